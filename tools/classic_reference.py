#!/usr/bin/env python3
"""Caption pairs for the classic metrics, and pycocoevalcap's scores of them.

Developer machine only (needs `pycocoevalcap` in .wolf/devenv and Java for its PTB tokenizer
and METEOR jar); CI reads the JSON files it writes, never runs it.

    .wolf/devenv/bin/python tools/classic_reference.py pairs --annotations /tmp/cw/annotations.json
    .wolf/devenv/bin/python tools/classic_reference.py reference

`pairs` builds tests/data/classic_pairs.json from a synthetic world's annotations
(`wolf synth --out /tmp/cw --count 60 --seed 21`): each ground-truth caption gets
handwritten paraphrases (references) and perturbed candidates (word swaps, dropped
clauses, punctuation, capitals, numbers, contractions, hyphens, Unicode quotes and dashes,
near-empty and long captions), all drawn from random.Random(SEED), so the file is the
same every run. It also keeps a list of hard strings for the tokenizer alone.

`reference` runs pycocoevalcap on those pairs exactly as its COCOEvalCap does: the PTB
tokenizer (Stanford CoreNLP 3.4.1, lower-cased, punctuation tokens dropped), then Bleu(4),
Meteor, Rouge and Cider on the tokenized captions. pycocoevalcap's `Cider` *is* CIDEr-D
(clipped n-gram counts, the Gaussian length penalty with sigma 6, x10; its
cider_scorer.py is line for line the `ciderD_scorer.py` of the CIDEr authors' code with
df_mode="corpus"), so its numbers are recorded as `cider_d`. It also records METEOR 1.5 run
with only its exact and stem modules (`-m "exact stem" -w "1.0 0.6"`, same parameters),
the variant the Rust port implements, the Java tokenizer's output per caption and the
Snowball stems of every word METEOR sees. Everything goes to
tests/data/classic_reference.json with the pycocoevalcap and Java versions.
"""

import argparse
import json
import os
import random
import re
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PAIRS = os.path.join(ROOT, "tests", "data", "classic_pairs.json")
REFERENCE = os.path.join(ROOT, "tests", "data", "classic_reference.json")
SEED = 21

# ---------------------------------------------------------------------------
# Pairs
# ---------------------------------------------------------------------------

# Paraphrases of the synthetic world's phrases (each a list of alternatives).
MOTION = {
    "moves from top to bottom": ["moves down", "falls from the top to the bottom", "travels downward",
                                 "drops down the screen", "slides down"],
    "moves from bottom to top": ["moves up", "rises from the bottom to the top", "travels upward",
                                 "goes up the screen", "floats up"],
    "moves from left to right": ["slides to the right", "travels rightward", "moves right",
                                 "goes across from the left side to the right side", "moves left-to-right"],
    "moves from right to left": ["slides to the left", "travels leftward", "moves left",
                                 "goes across from the right side to the left side", "moves right-to-left"],
    "bounces around the frame": ["is bouncing around the screen", "bounces off the edges",
                                 "keeps bouncing around", "bounces all over the frame", "ricochets around the frame"],
}
DIAGONAL = re.compile(r"moves diagonally from the (top|bottom) (left|right) to the (top|bottom) (left|right)")
STAYS = re.compile(r"stays (in the (?:top|bottom) (?:left|right) corner|on the left|in the center|at the bottom)")
BACKGROUND = re.compile(r"on a (white|black|gray) background")
SIGN = re.compile(r' A sign reads "([A-Z]+)"\.')
COLOURS = ["red", "green", "blue", "yellow", "orange", "purple"]
SHAPES = ["circle", "square", "triangle"]
SHAPE_WORDS = {"circle": ["circle", "ball", "dot", "disc"], "square": ["square", "box", "block"],
               "triangle": ["triangle", "triangle", "wedge"]}

LONG_TAIL = [
    " The camera is static and the lighting is even throughout the whole clip, with no other objects visible.",
    " Nothing else happens in the video; the shapes keep their colours and sizes the entire time.",
    " The animation is smooth, the edges are sharp, and the clip lasts a few seconds before it loops.",
]
PREFIXES = ["The video shows ", "In this video, ", "This clip shows ", "We see ", "The animation shows "]
SHORT = ["", ".", "...", "A circle.", "Shapes.", "ok", "A red", "moving", "!!", "Two shapes", "It moves.",
         "a", "The", "-", "(empty)"]
SPECIAL = [
    # Contractions, possessives, quotes, Unicode, numbers, hyphens, abbreviations.
    ("It's a red circle that doesn't stop; it isn't slowing down.",
     ["A red circle keeps moving without stopping.", "The red circle never stops moving."]),
    ("The square's path goes left-to-right, and the circle's goes top-to-bottom.",
     ["A square moves from left to right while a circle moves from top to bottom."]),
    ("A sign reads “EXIT” — it’s white on black…",
     ['A sign reads "EXIT" on a black background.', "A white sign says EXIT."]),
    ("2 shapes move: 1 circle and 1 square, at 3.5 seconds and again at 10:30.",
     ["A circle and a square move.", "Two shapes, a circle and a square, are moving."]),
    ("Over 1,000 frames, the dot moves 50% of the way (about 320 px) to the right!",
     ["A dot moves to the right.", "A small circle slides toward the right side."]),
    ("A CAFÉ sign, a naïve drawing and a rôle-playing triangle.",
     ["A sign reads CAFE next to a triangle."]),
    ("The U.S. flag appears at 5 p.m., e.g. near the top-left corner.",
     ["A flag appears in the top left corner."]),
    ("Mr. Square and Dr. Circle meet at St. Louis Ave. in the centre.",
     ["A square and a circle meet in the center."]),
    ("A blue circle (small) moves [slowly] from {left} to right.",
     ["A small blue circle moves slowly from left to right."]),
    ("The shapes' colours: red/green/blue & yellow -- all bright.",
     ["The shapes are red, green, blue and yellow."]),
    ("Can't see it? Won't move! They'll bounce, we're sure, I'm told, you've seen it, I'd say.",
     ["The shapes bounce around the frame."]),
    ("A green triangle moves from bottom to top on a gray background.",
     ["A green triangle moves from bottom to top on a gray background."]),
    ("a GREEN triangle MOVES from BOTTOM to TOP on a GRAY background",
     ["A green triangle moves from bottom to top on a gray background."]),
    ("A red square moves moves moves from left to right right right.",
     ["A red square moves from left to right.", "A red block slides to the right."]),
    ("right to left from moves square red a",
     ["A red square moves from right to left."]),
    ("The circle cannot stop; gonna bounce, wanna move, gotta go.",
     ["The circle bounces around the frame."]),
    ("Running, jumping and rotating, the triangles are spinning quickly.",
     ["The triangle runs, jumps and rotates.", "A triangle spins quickly while it jumps."]),
    ("The 1990s-style animation shows a '90s look with 3-D shapes.",
     ["A retro animation shows three-dimensional shapes."]),
    ("Generously, the organizational happiness of the connected shapes is relational.",
     ["Connected shapes happily organize themselves in relation to each other."]),
    ("A purple circle moves diagonally from the top left to the bottom right on a white background. "
     "A sign reads \"WOLF\".",
     ["A purple circle moves diagonally from the top left to the bottom right on a white background. "
      "A sign reads \"WOLF\".", "A violet ball travels diagonally down to the right over a white backdrop."]),
]
# Hard strings for the tokenizer alone (not scored).
TOKENIZER_PROBES = [
    "A man's dog doesn't run; it's \"fast\" (really).",
    "The U.S. army at 10:30 a.m. paid $1,000.50 for 3.5 kg -- cheap!",
    "Left-to-right, top-left... and e.g. Mr. Smith's car/bike *star* 50% off & more",
    "She said ``hi'' and 'bye' -- I'm we're they'll I'd you've can't won't gonna",
    "Café naïve — “quoted” ‘single’ … end",
    "A sign reads \"EXIT\". Another sign: 'OPEN'!",
    "{braces} [brackets] #hash ~tilde = + ^ _under_",
    "cannot gimme lemme wanna 'tis 'twas",
    "1/2 3-4 5.6.7 1,000,000 -5 +3 2nd 3rd 10th 1990s '90s",
    "red,blue a.b word.Next U.S.A. is here 3.5. end",
    "(a) a(b) x's' rock'n'roll o'clock ol' 'em y'all e-mail 100km/h 2x 5pm",
    "a- -a --a a--b ?! !!! wait... what?? no!!",
    "£5 €5 Don't DON'T it’s its' James' rock 'n' roll",
    "A sign reads \"EXIT.\" The end.",
    "Dr. Who met St. John at 5 p.m. today. Inc. Corp. etc. vs. Mt. Jan. Feb.",
    "the circle, moving left; the square: moving right. the end. the u.s.",
    "two-thirds of a 3-D object -- an X-ray; T-shirt , a ,b ;c",
    "\"Hello,\" he said. \"Bye!\" 'Quote,' she said.",
    "a circle...",
    "The shapes' colours aren't the squares' ones.",
    "An 8-bit, 24-frame-per-second clip @ 30fps.",
    "word.next. x < y > z [a] end.",
    "the U.S. Army; a.m. The e.g. foo. Inc. went. inc. went",
    "it's I'M HE'S THEY'RE WE'VE SHE'LL DON'T can't CANNOT Cannot",
    "anti-clockwise pro- anti- co-op re-enter e-mail's rock-n-roll",
    "point a. then b. go. C. Jr. Ph.D. no. 5 No. 5",
    "12/25/2020 3.5% -3.5 .5 5. $5 US$5",
    "café-style naïve-ish état's 'hello' ‘hi’ don’t",
    "well--really ---- ----- .... ..... . . . ?!? !?",
    "x_y a_b_c __init__ #1 ##2 @@ ** ***",
    "'tis 'twas 'til 'em 'n' o'neill O'Neill d'arcy l'amour",
    "http://x.com www.x.com a@b.com :-)",
    "The circle's 3rd bounce: 2x faster (at 5pm), then 10 m/s.",
    "A 'quoted' word, a “curly” one and a ‘single’ one.",
    "It is 7:45 p.m. on Jan. 5, and the U.K. team's car isn't red.",
    "Shapes: A) a circle; B) a square; C) a triangle.",
]


def paraphrase(caption, rng):
    """A handwritten-style paraphrase of one synthetic caption."""
    text = caption
    for phrase, options in MOTION.items():
        text = re.sub(re.escape(phrase), lambda _m: rng.choice(options), text)

    def diagonal(m):
        v1, h1, v2, h2 = m.groups()
        return rng.choice([f"moves diagonally down to the {h2}" if v2 == "bottom" else f"moves diagonally up to the {h2}",
                           f"travels diagonally toward the {'lower' if v2 == 'bottom' else 'upper'} {h2} corner",
                           f"crosses the frame from the {v1} {h1} corner to the {v2} {h2} corner",
                           m.group(0)])
    text = DIAGONAL.sub(diagonal, text)
    text = STAYS.sub(lambda m: rng.choice([f"remains {m.group(1)}", f"sits still {m.group(1)}",
                                           f"does not move {m.group(1)}", m.group(0)]), text)
    text = BACKGROUND.sub(lambda m: rng.choice([f"against a {m.group(1)} backdrop", f"over a plain {m.group(1)} background",
                                                f"on {m.group(1)}", f"in front of a {m.group(1)} background",
                                                m.group(0)]), text)
    text = SIGN.sub(lambda m: rng.choice([f" A sign says {m.group(1)}.", f" There is a sign that reads '{m.group(1)}'.",
                                          f" The word {m.group(1)} appears on a sign.", m.group(0)]), text)
    for shape, words in SHAPE_WORDS.items():
        text = re.sub(rf"\b{shape}\b", lambda _m: rng.choice(words), text)
    if rng.random() < 0.3:
        text = text.replace("gray", "grey")
    if rng.random() < 0.4:
        text = text.replace(" while ", rng.choice([" as ", " and ", ", while "]))
    if rng.random() < 0.3:
        text = re.sub(r", (a|an) ", lambda m: f". {m.group(1).capitalize()} ", text, count=1)
    return fix_articles(text)


def fix_articles(text):
    text = re.sub(r"\b([Aa]) (orange|[aeiou]\w*)", lambda m: ("An" if m.group(1) == "A" else "an") + " " + m.group(2), text)
    return re.sub(r"\b([Aa])n ((?![aeiou])[a-z]\w*)", lambda m: m.group(1) + " " + m.group(2), text)


def swap_word(text, pool, rng):
    present = [w for w in pool if re.search(rf"\b{w}\b", text)]
    if not present:
        return text
    old = rng.choice(present)
    new = rng.choice([w for w in pool if w != old])
    return re.sub(rf"\b{old}\b", new, text, count=1)


def drop_clause(text, rng):
    sentences = re.split(r"(?<=\.) ", text)
    if len(sentences) > 1 and rng.random() < 0.5:
        return " ".join(sentences[:-1])
    parts = re.split(r", | while ", sentences[0])
    if len(parts) > 1:
        keep = parts[: rng.randrange(1, len(parts))]
        tail = re.search(r" on an? \w+ background\.?$", sentences[0])
        return ", ".join(keep) + (tail.group(0) if tail and not keep[-1].endswith(tail.group(0)) else ".")
    return re.sub(r" on an? \w+ background", "", text)


def punctuate(text, rng):
    choice = rng.randrange(6)
    if choice == 0:
        return text.replace(", ", "; ").rstrip(".") + "!"
    if choice == 1:
        return re.sub(r" (on an? \w+ background)", r" (\1)", text)
    if choice == 2:
        return text.replace(" from ", " -- from ", 1)
    if choice == 3:
        return text.rstrip(".") + "..."
    if choice == 4:
        return text.replace(",", "").replace(".", "")
    return text.replace(" and ", ", and ").replace(".", " .")


def capitals(text, rng):
    choice = rng.randrange(3)
    if choice == 0:
        return text.upper()
    if choice == 1:
        return text.title()
    return " ".join(w.upper() if rng.random() < 0.3 else w for w in text.split(" "))


def numbers(text, rng):
    count = len(re.findall(r"\b(circle|square|triangle)\b", text))
    return rng.choice([f"{count} shape{'s' if count != 1 else ''}: ", f"There are {count} objects. ",
                       f"At 0:0{rng.randrange(1, 9)}, ", f"For {rng.randrange(2, 9)}.5 seconds, "]) + text[0].lower() + text[1:]


def contractions(text, rng):
    text = re.sub(r"\b(\w+) (moves|bounces|stays)\b", lambda m: f"{m.group(1)}'s {'moving' if m.group(2) == 'moves' else m.group(2)[:-1] + 'ing'}", text, count=1)
    return text.rstrip(".") + rng.choice([", and it doesn't stop.", "; it isn't fast.", ", but it won't leave."])


def hyphens(text, rng):
    text = re.sub(r"from (left|right|top|bottom) to (left|right|top|bottom)", r"\1-to-\2", text)
    text = re.sub(r"the (top|bottom) (left|right)", r"the \1-\2", text)
    return text.replace(" a ", " a brightly-coloured ", 1) if rng.random() < 0.5 else text


def unicode_marks(text, rng):
    text = re.sub(r'"([A-Z]+)"', "“\\1”", text)
    text = text.replace(", ", " — ", 1) if rng.random() < 0.5 else text.replace(".", "…", 1)
    return text.replace("'", "’")


def candidate(ground, refs, rng):
    """One perturbed candidate caption and a label of how it was made."""
    base = rng.choice([ground] + refs)
    kind = rng.choice(["copy", "paraphrase", "swap_colour", "swap_shape", "swap_direction", "drop", "punctuation",
                       "capitals", "numbers", "contractions", "hyphens", "unicode", "prefix", "long", "short",
                       "swap_colour", "drop", "paraphrase"])
    if kind == "copy":
        text = base
    elif kind == "paraphrase":
        text = paraphrase(ground, rng)
    elif kind == "swap_colour":
        text = fix_articles(swap_word(base, COLOURS, rng))
    elif kind == "swap_shape":
        text = swap_word(base, SHAPES, rng)
    elif kind == "swap_direction":
        text = swap_word(base, ["left", "right", "top", "bottom"], rng)
    elif kind == "drop":
        text = drop_clause(base, rng)
    elif kind == "punctuation":
        text = punctuate(base, rng)
    elif kind == "capitals":
        text = capitals(base, rng)
    elif kind == "numbers":
        text = numbers(base, rng)
    elif kind == "contractions":
        text = contractions(base, rng)
    elif kind == "hyphens":
        text = hyphens(base, rng)
    elif kind == "unicode":
        text = unicode_marks(base, rng)
    elif kind == "prefix":
        text = rng.choice(PREFIXES) + base[0].lower() + base[1:]
    elif kind == "long":
        text = base + " " + paraphrase(ground, rng) + rng.choice(LONG_TAIL)
    else:
        text = rng.choice(SHORT)
    return kind, text


def make_pairs(annotations_path):
    rng = random.Random(SEED)
    with open(annotations_path, encoding="utf-8") as f:
        annotations = json.load(f)
    items = []
    for clip in sorted(annotations):
        ground = annotations[clip]["output"]
        paraphrases = []
        for _ in range(12):
            p = paraphrase(ground, rng)
            if p != ground and p not in paraphrases:
                paraphrases.append(p)
        for _ in range(4):
            n_refs = rng.randint(1, 5)
            refs = [ground] + paraphrases[: n_refs - 1]
            rng.shuffle(refs)
            kind, text = candidate(ground, paraphrases[:3], rng)
            items.append({"source": f"{clip}:{kind}", "candidate": text, "references": refs})
    for i, (cand, refs) in enumerate(SPECIAL):
        items.append({"source": f"special:{i}", "candidate": cand, "references": refs})
    return {
        "about": "Caption pairs for the classic metrics (tools/classic_reference.py pairs; seed "
                 f"{SEED}; ground truths from `wolf synth --count 60 --seed 21`).",
        "pairs": items,
        "tokenizer_probes": TOKENIZER_PROBES,
    }


# ---------------------------------------------------------------------------
# Reference scores
# ---------------------------------------------------------------------------

def java_version():
    out = subprocess.run(["java", "-version"], capture_output=True, text=True)
    return out.stderr.strip().splitlines()[0]


def ptb_tokenize(texts):
    """Stanford PTBTokenizer exactly as pycocoevalcap runs it, one output per input."""
    from pycocoevalcap.tokenizer.ptbtokenizer import PTBTokenizer
    data = {i: [{"caption": t}] for i, t in enumerate(texts)}
    out = PTBTokenizer().tokenize(data)
    return [out[i][0] for i in range(len(texts))]


def ptb_raw(texts):
    """The tokenizer's raw output (before punctuation removal), for the tokenizer test."""
    import pycocoevalcap.tokenizer.ptbtokenizer as ptb
    jar_dir = os.path.dirname(os.path.abspath(ptb.__file__))
    with tempfile.NamedTemporaryFile("w", delete=False, suffix=".txt", encoding="utf-8") as f:
        f.write("\n".join(t.replace("\n", " ") for t in texts))
        name = f.name
    try:
        out = subprocess.run(["java", "-cp", ptb.STANFORD_CORENLP_3_4_1_JAR, "edu.stanford.nlp.process.PTBTokenizer",
                              "-preserveLines", "-lowerCase", name], cwd=jar_dir, capture_output=True, check=True)
    finally:
        os.remove(name)
    lines = out.stdout.decode("utf-8").split("\n")
    return [line.rstrip() for line in lines[: len(texts)]]


class MeteorJar:
    """pycocoevalcap's Meteor wrapper, with the module list as an argument."""

    def __init__(self, extra):
        import pycocoevalcap.meteor.meteor as m
        self.cwd = os.path.dirname(os.path.abspath(m.__file__))
        cmd = ["java", "-jar", "-Xmx2G", m.METEOR_JAR, "-", "-", "-stdio", "-l", "en", "-norm"] + extra
        self.p = subprocess.Popen(cmd, cwd=self.cwd, stdin=subprocess.PIPE, stdout=subprocess.PIPE)

    def compute_score(self, gts, res):
        eval_line = "EVAL"
        for i in gts:
            hyp = res[i][0].replace("|||", "").replace("  ", " ")
            score_line = " ||| ".join(("SCORE", " ||| ".join(gts[i]), hyp))
            self.p.stdin.write(f"{score_line}\n".encode())
            self.p.stdin.flush()
            stat = self.p.stdout.readline().decode().strip()
            eval_line += f" ||| {stat}"
        self.p.stdin.write(f"{eval_line}\n".encode())
        self.p.stdin.flush()
        scores = [float(self.p.stdout.readline().strip()) for _ in gts]
        return float(self.p.stdout.readline().strip()), scores

    def close(self):
        self.p.stdin.close()
        self.p.wait()


def meteor_normalize(lines):
    """METEOR's own normalizer (`-norm`, punctuation kept) on each line, then lower case."""
    import pycocoevalcap.meteor.meteor as m
    jar = os.path.join(os.path.dirname(os.path.abspath(m.__file__)), m.METEOR_JAR)
    out = subprocess.run(["java", "-cp", jar, "edu.cmu.meteor.util.Normalizer", "en", "true"],
                         input="\n".join(lines) + "\n", capture_output=True, text=True, check=True)
    return [line.lower() for line in out.stdout.split("\n")[: len(lines)]]


STEMMER_JAVA = """
import org.tartarus.snowball.ext.englishStemmer;
import java.io.*;
public class Stem {
  public static void main(String[] a) throws IOException {
    BufferedReader in = new BufferedReader(new InputStreamReader(System.in, "UTF-8"));
    PrintStream out = new PrintStream(System.out, true, "UTF-8");
    englishStemmer s = new englishStemmer();
    String w;
    while ((w = in.readLine()) != null) { s.setCurrent(w); s.stem(); out.println(s.getCurrent()); }
  }
}
"""


def snowball_stems(words):
    """The METEOR jar's own Snowball English stemmer on each word."""
    import pycocoevalcap.meteor.meteor as m
    jar = os.path.join(os.path.dirname(os.path.abspath(m.__file__)), m.METEOR_JAR)
    with tempfile.TemporaryDirectory() as tmp:
        with open(os.path.join(tmp, "Stem.java"), "w") as f:
            f.write(STEMMER_JAVA)
        subprocess.run(["javac", "-cp", jar, "-d", tmp, os.path.join(tmp, "Stem.java")], check=True)
        out = subprocess.run(["java", "-cp", f"{jar}{os.pathsep}{tmp}", "Stem"],
                             input=("\n".join(words) + "\n").encode("utf-8"), capture_output=True, check=True)
    return out.stdout.decode("utf-8").split("\n")[: len(words)]


# Extra words for the stemmer check: Snowball's hard cases.
STEM_WORDS = [
    "caresses", "ponies", "ties", "caress", "cats", "feed", "agreed", "plastered", "bled", "motoring", "sing",
    "conflated", "troubled", "sized", "hopping", "tanned", "falling", "hissing", "fizzed", "failing", "filing",
    "happy", "sky", "relational", "conditional", "rational", "valenci", "hesitanci", "digitizer", "conformabli",
    "radicalli", "differentli", "vileli", "analogousli", "vietnamization", "predication", "operator", "feudalism",
    "decisiveness", "hopefulness", "callousness", "formaliti", "sensitiviti", "sensibiliti", "triplicate",
    "formative", "formalize", "electriciti", "electrical", "hopeful", "goodness", "revival", "allowance",
    "inference", "airliner", "gyroscopic", "adjustable", "defensible", "irritant", "replacement", "adjustment",
    "dependent", "adoption", "homologou", "communism", "activate", "angulariti", "homologous", "effective",
    "bowdlerize", "probate", "rate", "cease", "controll", "roll", "generously", "generate", "generous", "arsenal",
    "communities", "commune", "skis", "skies", "dying", "lying", "tying", "idly", "gently", "ugly", "early",
    "only", "singly", "news", "howe", "atlas", "cosmos", "bias", "andes", "inning", "outing", "canning",
    "herring", "earring", "proceed", "exceed", "succeed", "youth", "boy's", "boys'", "y", "yy", "yes", "flying",
    "crying", "said", "says", "consigned", "knightly", "abilities", "colours", "colourful", "organization",
    "organizational", "happiness", "bouncing", "bounces", "moves", "moving", "diagonally", "rotates",
    "rotating", "slides", "sliding", "travels", "travelling", "traveling", "rises", "rising", "triangles",
    "squares", "circles", "backgrounds", "corner", "corners", "reads", "reading", "shows", "showing",
]


def score(pairs):
    from pycocoevalcap.bleu.bleu import Bleu
    from pycocoevalcap.cider.cider import Cider
    from pycocoevalcap.meteor.meteor import Meteor
    from pycocoevalcap.rouge.rouge import Rouge

    texts = []
    for p in pairs:
        texts.append(p["candidate"])
        texts.extend(p["references"])
    tokenized = ptb_tokenize(texts)
    res, gts, at = {}, {}, 0
    for i, p in enumerate(pairs):
        res[i] = [tokenized[at]]
        gts[i] = tokenized[at + 1: at + 1 + len(p["references"])]
        at += 1 + len(p["references"])

    out = {}
    bleu, bleu_items = Bleu(4).compute_score(gts, res, verbose=0)
    for n in range(4):
        out[f"bleu{n + 1}"] = {"corpus": bleu[n], "items": list(bleu_items[n])}
    meteor, meteor_items = Meteor().compute_score(gts, res)
    out["meteor"] = {"corpus": meteor, "items": list(meteor_items)}
    rouge, rouge_items = Rouge().compute_score(gts, res)
    out["rouge_l"] = {"corpus": float(rouge), "items": [float(x) for x in rouge_items]}
    cider, cider_items = Cider().compute_score(gts, res)
    out["cider_d"] = {"corpus": float(cider), "items": [float(x) for x in cider_items]}
    jar = MeteorJar(["-m", "exact stem", "-w", "1.0 0.6"])
    exact_stem, exact_stem_items = jar.compute_score(gts, res)
    jar.close()
    out["meteor_exact_stem"] = {"corpus": exact_stem, "items": exact_stem_items}
    return out, [{"candidate": res[i][0], "references": gts[i]} for i in range(len(pairs))]


def make_reference(pairs_doc):
    from importlib.metadata import version
    pairs = pairs_doc["pairs"]
    scores, tokenized = score(pairs)
    probes = pairs_doc["tokenizer_probes"]
    lines = [t["candidate"] for t in tokenized] + [r for t in tokenized for r in t["references"]]
    normalized = meteor_normalize(lines)
    words = sorted({w for line in normalized for w in line.split()} | set(STEM_WORDS))
    stems = snowball_stems(words)
    return {
        "about": "pycocoevalcap's scores of tests/data/classic_pairs.json (tools/classic_reference.py reference).",
        "pycocoevalcap": version("pycocoevalcap"),
        "java": java_version(),
        "tokenizer": "Stanford CoreNLP 3.4.1 PTBTokenizer -preserveLines -lowerCase, pycocoevalcap's punctuation list removed",
        "meteor": "meteor-1.5.jar -l en -norm (modules exact stem synonym paraphrase, weights 1.0 0.6 0.8 0.6, "
                  "parameters 0.85 0.2 0.6 0.75); meteor_exact_stem adds -m 'exact stem' -w '1.0 0.6'",
        "scores": scores,
        "tokenized": tokenized,
        "tokenizer_probes": [{"text": t, "ptb": ptb_raw([t])[0], "tokenized": ptb_tokenize([t])[0]} for t in probes],
        "meteor_normalized": dict(zip(lines, normalized)),
        "stems": dict(zip(words, stems)),
    }


def write_json(path, data):
    with open(path, "w", encoding="utf-8") as f:
        json.dump(data, f, ensure_ascii=False, indent=1)
        f.write("\n")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("pairs", help="build tests/data/classic_pairs.json")
    p.add_argument("--annotations", required=True, help="annotations.json of `wolf synth --count 60 --seed 21`")
    p.add_argument("--out", default=PAIRS)
    r = sub.add_parser("reference", help="score the pairs with pycocoevalcap")
    r.add_argument("--pairs", default=PAIRS)
    r.add_argument("--out", default=REFERENCE)
    args = parser.parse_args()
    if args.command == "pairs":
        doc = make_pairs(args.annotations)
        write_json(args.out, doc)
        print(f"{len(doc['pairs'])} pairs -> {args.out}")
    else:
        with open(args.pairs, encoding="utf-8") as f:
            doc = json.load(f)
        ref = make_reference(doc)
        write_json(args.out, ref)
        print(f"{len(doc['pairs'])} pairs scored -> {args.out}")
        for name, s in ref["scores"].items():
            print(f"  {name:18} {s['corpus']:.6f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
