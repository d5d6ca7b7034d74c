//! Where in the file a syntax or type error is, in words.

/// A syntax or type error in the file: where (section and key, and the line), what, and the
/// expected type in words. toml alone names only a byte offset.
pub(super) fn top_level_message(
    error: &serde_path_to_error::Error<toml::de::Error>,
    text: &str,
) -> String {
    let inner = error.inner();
    let mut message = crate::keys::humanize(inner.message());
    if let Some(span) = inner.span() {
        let line = text[..span.start.min(text.len())].matches('\n').count() + 1;
        message = format!("{message} (line {line})");
    }
    // Keys, each with the list item it went into, if any (`https = ["a", 5]`: item 2).
    let mut keys: Vec<(String, Option<usize>)> = Vec::new();
    for segment in error.path().iter() {
        match segment {
            serde_path_to_error::Segment::Map { key } => keys.push((key.clone(), None)),
            serde_path_to_error::Segment::Seq { index } => match keys.last_mut() {
                Some(last) if last.1.is_none() => last.1 = Some(*index),
                _ => keys.push((String::new(), Some(*index))),
            },
            _ => {}
        }
    }
    let name = |(key, item): &(String, Option<usize>)| match item {
        Some(index) => format!("{key} #{}", index + 1),
        None => key.clone(),
    };
    match keys.split_last() {
        None => message,
        Some((key, [])) => format!("key `{}`: {message}", name(key)),
        Some((key, section)) => format!(
            "[{}] key `{}`: {message}",
            section.iter().map(name).collect::<Vec<_>>().join("."),
            name(key)
        ),
    }
}
