//! Fills `{{name}}` placeholders of the HTML templates in `static/`.
//!
//! One pass over the template, copying literal text and substituting each placeholder once.
//! Substituted text is never scanned again, so a value that itself contains `{{…}}` (a folder
//! named `{{rows}}`, a file named `{{title}}`) is shown as it is, not filled in a second time.

/// The template with every known placeholder replaced by its value; an unknown `{{name}}` is
/// left as it is.
pub fn fill<'a>(template: &str, value: impl Fn(&str) -> Option<&'a str>) -> String {
    let mut out = String::with_capacity(template.len());
    let mut rest = template;
    while let Some(open) = rest.find("{{") {
        out.push_str(&rest[..open]);
        let after = &rest[open + 2..];
        match after
            .find("}}")
            .and_then(|close| Some((close, value(&after[..close])?)))
        {
            Some((close, text)) => {
                out.push_str(text);
                rest = &after[close + 2..];
            }
            None => {
                out.push_str("{{");
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn substituted_text_is_not_filled_again() {
        let values = |name: &str| match name {
            "a" => Some("{{b}}"),
            "b" => Some("B"),
            _ => None,
        };
        assert_eq!(fill("<{{a}}|{{b}}|{{c}}|{{b", values), "<{{b}}|B|{{c}}|{{b");
        assert_eq!(fill("no placeholders", values), "no placeholders");
        assert_eq!(fill("{{{b}}}", values), "{{{b}}}");
    }
}
