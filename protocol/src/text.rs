//! The one rule for check output shown to people (a RuleSet's status `problems`, Kubernetes
//! Events, alert annotations): bounded in bytes and stripped of control characters, so that a
//! plugin (or whoever controls what it reads) cannot paint terminals with ANSI escapes, hide
//! text with carriage returns or bidirectional overrides, or fill etcd.
//!
//! Kept: printable text and `\n` (Nagios long output is multi-line). Dropped: ANSI escape
//! sequences as a whole (CSI `ESC [ … final`, OSC `ESC ] … BEL|ESC \`, and `ESC` with the one
//! character after it), every other C0 and C1 control character and DEL, and the Unicode
//! bidirectional controls (U+202A–U+202E, U+2066–U+2069, U+200E, U+200F, U+061C). A tab
//! becomes a space, `\r\n` a newline. Invalid UTF-8 becomes U+FFFD ([`sanitize_bytes`]).
//! Text longer than the limit is cut at a character boundary and ends with [`TRUNCATED`].

/// What ends text that was cut to its limit.
pub const TRUNCATED: &str = "…[truncated]";

/// `text` sanitized and at most `max_bytes` long (UTF-8 bytes), [`TRUNCATED`] included when it
/// was cut. A limit smaller than the marker cuts without one.
pub fn sanitize_output(text: &str, max_bytes: usize) -> String {
    truncate(strip_controls(text), max_bytes)
}

/// [`sanitize_output`] of bytes that may not be UTF-8.
pub fn sanitize_bytes(bytes: &[u8], max_bytes: usize) -> String {
    sanitize_output(&String::from_utf8_lossy(bytes), max_bytes)
}

/// `text` without control characters and escape sequences (see the module documentation).
pub fn strip_controls(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut characters = text.chars().peekable();
    while let Some(character) = characters.next() {
        match character {
            '\n' => out.push('\n'),
            '\t' => out.push(' '),
            '\u{1b}' => skip_escape(&mut characters),
            // A CSI written as the single C1 character.
            '\u{9b}' => skip_csi(&mut characters),
            c if c.is_control() || is_bidi_control(c) => {}
            c => out.push(c),
        }
    }
    out
}

/// Whether `c` changes the direction of the text around it.
fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}' | '\u{200e}' | '\u{200f}' | '\u{61c}')
}

type Chars<'a> = std::iter::Peekable<std::str::Chars<'a>>;

/// Skips what follows an `ESC`: a CSI or OSC sequence, or the one character after it.
fn skip_escape(characters: &mut Chars<'_>) {
    match characters.next() {
        Some('[') => skip_csi(characters),
        Some(']' | 'P' | '_' | '^' | 'X') => skip_string(characters),
        _ => {}
    }
}

/// Skips a CSI's parameters and intermediates up to its final byte (`@`–`~`).
fn skip_csi(characters: &mut Chars<'_>) {
    while let Some(&c) = characters.peek() {
        if !('\u{20}'..='\u{3f}').contains(&c) {
            if ('\u{40}'..='\u{7e}').contains(&c) {
                characters.next();
            }
            return;
        }
        characters.next();
    }
}

/// Skips an OSC (or DCS, APC, PM, SOS) string up to BEL or `ESC \`; a newline also ends it,
/// so that an unterminated sequence hides one line at most.
fn skip_string(characters: &mut Chars<'_>) {
    while let Some(&c) = characters.peek() {
        match c {
            '\u{7}' | '\u{9c}' => {
                characters.next();
                return;
            }
            '\n' => return,
            '\u{1b}' => {
                characters.next();
                characters.next_if_eq(&'\\');
                return;
            }
            _ => {
                characters.next();
            }
        }
    }
}

/// `text` cut to at most `max_bytes` at a character boundary, ending with [`TRUNCATED`] when cut.
pub fn truncate(mut text: String, max_bytes: usize) -> String {
    if text.len() <= max_bytes {
        return text;
    }
    let (room, marker) = match max_bytes.checked_sub(TRUNCATED.len()) {
        Some(room) => (room, TRUNCATED),
        None => (max_bytes, ""),
    };
    let mut end = room;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text.truncate(end);
    text.push_str(marker);
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn printable_text_and_newlines_are_kept() {
        let text = "DISK OK - free space: / 3326 MiB (56%)\nlong output: ünïcödé ✓";
        assert_eq!(sanitize_output(text, 1024), text);
    }

    #[test]
    fn ansi_escapes_are_removed_whole() {
        let text = "\u{1b}[1;31mCRITICAL\u{1b}[0m - \u{1b}]0;pwned\u{7}load \u{1b}]8;;http://x\u{1b}\\link";
        assert_eq!(sanitize_output(text, 1024), "CRITICAL - load link");
        assert_eq!(strip_controls("a\u{9b}2Jb"), "ab");
        assert_eq!(strip_controls("a\u{1b}cb\u{1b}"), "ab");
    }

    #[test]
    fn an_unterminated_osc_hides_one_line_at_most() {
        assert_eq!(strip_controls("a\u{1b}]0;title\nnext"), "a\nnext");
    }

    #[test]
    fn nul_carriage_returns_and_other_controls_are_dropped() {
        let text = "OK\0 hidden\r\nline2\rover\u{7f}\u{85}\u{8}\tend";
        assert_eq!(sanitize_output(text, 1024), "OK hidden\nline2over end");
    }

    #[test]
    fn bidirectional_overrides_are_dropped() {
        assert_eq!(
            strip_controls("user \u{202e}nimda\u{202c} ok"),
            "user nimda ok"
        );
        assert_eq!(strip_controls("\u{2066}x\u{2069}\u{200f}"), "x");
    }

    #[test]
    fn invalid_utf8_becomes_replacement_characters() {
        assert_eq!(
            sanitize_bytes(b"OK \xff\xfe\0done", 1024),
            "OK \u{fffd}\u{fffd}done"
        );
    }

    #[test]
    fn long_text_is_cut_at_a_char_boundary_with_the_marker() {
        let long = "é".repeat(10_000);
        let cut = sanitize_output(&long, 256);
        assert!(cut.len() <= 256, "{} bytes", cut.len());
        assert!(cut.ends_with(TRUNCATED));
        assert!(cut.trim_end_matches(TRUNCATED).chars().all(|c| c == 'é'));
        // 256 - 14 (marker) = 242 bytes = 121 characters of two bytes.
        assert_eq!(cut.chars().filter(|&c| c == 'é').count(), 121);
    }

    #[test]
    fn text_at_the_limit_is_not_cut() {
        let text = "x".repeat(256);
        assert_eq!(sanitize_output(&text, 256), text);
        assert_eq!(sanitize_output(&format!("{text}y"), 256).len(), 256);
    }

    #[test]
    fn a_limit_below_the_marker_cuts_without_it() {
        assert_eq!(sanitize_output("abcdefgh", 3), "abc");
        assert_eq!(sanitize_output("ééé", 3), "é");
        assert_eq!(sanitize_output("abc", 0), "");
    }

    #[test]
    fn the_limit_applies_after_stripping() {
        let text = format!("{}ok", "\u{1b}[0m".repeat(1000));
        assert_eq!(sanitize_output(&text, 16), "ok");
    }
}
