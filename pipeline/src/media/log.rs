//! FFmpeg's log, routed through `tracing` (target `ffmpeg`) instead of stderr.
//!
//! FFmpeg formats its messages with a C `va_list`; the callback hands that list,
//! untouched, to `av_log_format_line2`, which writes the line into a buffer.

use std::ffi::{CStr, c_char, c_int, c_void};

use ffmpeg_next::ffi;

/// The C `va_list` as bindgen spells it on this target.
#[cfg(target_arch = "x86_64")]
type VaList = *mut ffi::__va_list_tag;

#[cfg(target_arch = "x86_64")]
pub(super) fn route_to_tracing() {
    // SAFETY: setting the level and a callback with the signature FFmpeg expects.
    unsafe {
        ffi::av_log_set_level(ffi::AV_LOG_WARNING);
        ffi::av_log_set_callback(Some(callback));
    }
}

/// Where the `va_list` type is spelled differently, FFmpeg's log is silenced instead.
#[cfg(not(target_arch = "x86_64"))]
pub(super) fn route_to_tracing() {
    // SAFETY: setting FFmpeg's global log level.
    unsafe { ffi::av_log_set_level(ffi::AV_LOG_QUIET) };
}

#[cfg(target_arch = "x86_64")]
unsafe extern "C" fn callback(avcl: *mut c_void, level: c_int, fmt: *const c_char, args: VaList) {
    // SAFETY: plain read of FFmpeg's global level.
    if level > unsafe { ffi::av_log_get_level() } {
        return;
    }
    let mut line = [0 as c_char; 1024];
    let mut print_prefix: c_int = 1;
    // SAFETY: FFmpeg passes a valid format and argument list; the buffer's size is given.
    let written = unsafe {
        ffi::av_log_format_line2(
            avcl,
            level,
            fmt,
            args,
            line.as_mut_ptr(),
            line.len() as c_int,
            &mut print_prefix,
        )
    };
    if written < 0 {
        return;
    }
    // SAFETY: av_log_format_line2 always NUL-terminates within the buffer.
    let text = unsafe { CStr::from_ptr(line.as_ptr()) }.to_string_lossy();
    let text = text.trim_end();
    if text.is_empty() {
        return;
    }
    if level <= ffi::AV_LOG_ERROR {
        tracing::debug!(target: "ffmpeg", level, "{text}");
    } else {
        tracing::trace!(target: "ffmpeg", level, "{text}");
    }
}
