//! The section-config syntax proxmox-offline-mirror's file is written in, read the way its
//! parser reads it: a header `<type>: <id>` (a line starting with a letter), then properties,
//! each on a line that starts with whitespace (`\t` as written), `<key> <value>` split at the
//! first whitespace. A key given on several lines is a list; the value is one item, kept whole
//! (`skip-packages {a,b}*` is one glob, not two). A blank line ends a section.
//!
//! Two leniencies over the original, both for files edited by hand: `#` comment lines are
//! skipped, and a header right after a property line starts a new section.

/// One `key value` line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Property {
    pub key: String,
    pub value: String,
    /// 1-based line number, for messages.
    pub line: usize,
}

/// One `<kind>: <id>` section with its properties in file order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Section {
    pub kind: String,
    pub id: String,
    pub line: usize,
    pub properties: Vec<Property>,
}

impl Section {
    /// Every value of `key`, in file order (a list property).
    pub fn all(&self, key: &str) -> Vec<&Property> {
        self.properties.iter().filter(|p| p.key == key).collect()
    }
}

/// Splits the text into sections. Errors name the line, as the original parser does.
pub fn sections(text: &str) -> Result<Vec<Section>, String> {
    let mut sections: Vec<Section> = Vec::new();
    let mut open = false;
    for (index, raw) in text.lines().enumerate() {
        let number = index + 1;
        let line = raw.trim_end();
        if line.trim().is_empty() {
            open = false;
            continue;
        }
        if line.trim_start().starts_with('#') {
            continue;
        }
        if line.starts_with(char::is_whitespace) {
            let section = match sections.last_mut() {
                Some(section) if open => section,
                _ => {
                    return Err(format!(
                    "line {number}: a property outside any section (a blank line ends a section)"
                ))
                }
            };
            let content = line.trim_start();
            let (key, value) = content
                .split_once(char::is_whitespace)
                .map(|(k, v)| (k, v.trim()))
                .unwrap_or((content, ""));
            if value.is_empty() {
                return Err(format!("line {number}: property `{key}` has no value"));
            }
            section.properties.push(Property {
                key: key.to_string(),
                value: value.to_string(),
                line: number,
            });
            continue;
        }
        if !line.starts_with(char::is_alphabetic) {
            return Err(format!(
                "line {number}: expected a section header `<type>: <id>`, got `{line}`"
            ));
        }
        let (kind, id) = line.split_once(':').ok_or_else(|| {
            format!("line {number}: expected a section header `<type>: <id>`, got `{line}`")
        })?;
        let (kind, id) = (kind.trim(), id.trim());
        if id.is_empty() {
            return Err(format!("line {number}: section `{kind}` has no id"));
        }
        sections.push(Section {
            kind: kind.to_string(),
            id: id.to_string(),
            line: number,
            properties: Vec::new(),
        });
        open = true;
    }
    Ok(sections)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sections_and_properties_as_the_original_reads_them() {
        let text = "mirror: debian.main\n\tarchitectures amd64\n\tarchitectures all\n\tskip-packages  {a,b}-dbg* \n\nmedium: usb\n    mirrors debian.main\n";
        let found = sections(text).unwrap();
        assert_eq!(found.len(), 2);
        assert_eq!(
            (found[0].kind.as_str(), found[0].id.as_str()),
            ("mirror", "debian.main")
        );
        let values: Vec<&str> = found[0]
            .all("architectures")
            .iter()
            .map(|p| p.value.as_str())
            .collect();
        assert_eq!(values, ["amd64", "all"]);
        assert_eq!(found[0].all("skip-packages")[0].value, "{a,b}-dbg*");
        assert_eq!(found[1].all("mirrors")[0].line, 7);
    }

    #[test]
    fn broken_lines_are_named() {
        assert!(sections("\tkey value\n")
            .unwrap_err()
            .starts_with("line 1:"));
        assert!(sections("mirror: a\n\n\tverify true\n")
            .unwrap_err()
            .starts_with("line 3: a property outside any section"));
        assert_eq!(
            sections("mirror: a\n\tverify\n").unwrap_err(),
            "line 2: property `verify` has no value"
        );
        assert!(sections("mirror:\n").unwrap_err().contains("has no id"));
        assert!(sections("-x: y\n")
            .unwrap_err()
            .starts_with("line 1: expected"));
    }
}
