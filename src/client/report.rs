//! How an error reads on the terminal: one line by default, the cause chain
//! with `-v`, each cause once, without the operating system's "(os error N)"
//! suffix and without the hidden names of partial files.

/// The text of `error` as the user sees it: the top message, or with
/// `chain` every cause that adds something, joined by `: `.
pub fn error_text(error: &anyhow::Error, chain: bool) -> String {
    let mut text = String::new();
    for (index, cause) in error.chain().enumerate() {
        let message = cause.to_string();
        if index > 0 {
            // A message that already quotes its cause (or a cause that says
            // nothing new) would print the same words twice.
            if !chain || text.contains(&message) {
                continue;
            }
            text.push_str(": ");
        }
        text.push_str(&message);
    }
    tidy(&text)
}

/// Removes "(os error N)" and turns `.NAME.qftp-part` into `NAME`.
pub fn tidy(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find(" (os error ") {
        out.push_str(&rest[..start]);
        let after = &rest[start + " (os error ".len()..];
        match after.find(')') {
            Some(end) if after[..end].bytes().all(|byte| byte.is_ascii_digit()) => {
                rest = &after[end + 1..];
            }
            _ => {
                out.push_str(" (os error ");
                rest = after;
            }
        }
    }
    out.push_str(rest);
    visible_names(&out)
}

/// Each `.NAME.qftp-part` (a hidden partial file) as `NAME`.
fn visible_names(text: &str) -> String {
    let suffix = qftp_proto::PARTIAL_SUFFIX;
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(end) = rest.find(suffix) {
        let before = &rest[..end];
        let start = before
            .rfind(['/', ' ', '"', '\''])
            .map_or(0, |separator| separator + 1);
        match before[start..].strip_prefix('.') {
            Some(name) if !name.is_empty() => {
                out.push_str(&before[..start]);
                out.push_str(name);
            }
            _ => {
                out.push_str(before);
                out.push_str(suffix);
            }
        }
        rest = &rest[end + suffix.len()..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn os_error_numbers_and_partial_names_are_left_out() {
        assert_eq!(
            tidy("/out/.a.txt.qftp-part: No space left on device (os error 28)"),
            "/out/a.txt: No space left on device"
        );
        assert_eq!(tidy("plain (os error x)"), "plain (os error x)");
        assert_eq!(tidy("\"d/.b.qftp-part\" gone"), "\"d/b\" gone");
    }

    #[test]
    fn a_cause_is_shown_once() {
        let io = std::io::Error::new(std::io::ErrorKind::NotFound, "not there");
        let error = anyhow::Error::new(io).context("a.txt: not there");
        assert_eq!(error_text(&error, true), "a.txt: not there");
        let error = anyhow::anyhow!("inner").context("outer");
        assert_eq!(error_text(&error, true), "outer: inner");
        assert_eq!(error_text(&error, false), "outer");
    }
}
