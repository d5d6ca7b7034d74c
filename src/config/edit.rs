//! Editing a configuration file the way a person would: `mirrorbox add` appends one
//! `[[source]]` and leaves every comment, blank line and key order of the file as it was, and
//! `mirrorbox init` writes a new file. The edited text is validated by the real loader
//! ([`Config::parse`]) before anything reaches the disk, and files are replaced atomically:
//! a crash or a concurrent reader sees the old file or the new one, never a part.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use toml_edit::{ArrayOfTables, DocumentMut, Item, Table, Value};

use super::{Config, ConfigError};

/// Where trailing comments start, as in the shipped configuration.
const COMMENT_COLUMN: usize = 40;

#[derive(Debug, thiserror::Error)]
pub enum EditError {
    #[error("cannot read config file {file}: {source}")]
    Read {
        file: PathBuf,
        source: std::io::Error,
    },
    #[error("{file}: not valid TOML: {message}")]
    Syntax { file: PathBuf, message: String },
    #[error("{file}: `source` is not a list of [[source]] tables; write each source as a [[source]] table to add to it")]
    NotTables { file: PathBuf },
    #[error("{file} exists already; nothing was written (remove it, or give another FILE)")]
    Exists { file: PathBuf },
    #[error(
        "{file} changed while it was being edited; nothing was written (run the command again)"
    )]
    Changed { file: PathBuf },
    #[error("cannot write {file}: {source}")]
    Write {
        file: PathBuf,
        source: std::io::Error,
    },
}

/// A configuration file opened for editing.
pub struct ConfigDocument {
    file: PathBuf,
    original: String,
    doc: DocumentMut,
}

impl ConfigDocument {
    pub fn read(file: &Path) -> Result<ConfigDocument, EditError> {
        let original = std::fs::read_to_string(file).map_err(|source| EditError::Read {
            file: file.to_path_buf(),
            source,
        })?;
        let doc = original
            .parse::<DocumentMut>()
            .map_err(|e| EditError::Syntax {
                file: file.to_path_buf(),
                message: e.to_string().trim_end().to_string(),
            })?;
        Ok(ConfigDocument {
            file: file.to_path_buf(),
            original,
            doc,
        })
    }

    pub fn file(&self) -> &Path {
        &self.file
    }

    /// The file's text as it was read.
    pub fn original(&self) -> &str {
        &self.original
    }

    /// The configuration as the file says it now.
    pub fn current(&self) -> Result<Config, ConfigError> {
        Config::parse(&self.original, &self.file)
    }

    /// Appends `source` after the file's last `[[source]]` (at the end if it has none).
    pub fn append_source(&mut self, source: NewTable) -> Result<(), EditError> {
        let not_tables = || EditError::NotTables {
            file: self.file.clone(),
        };
        let root = self.doc.as_table_mut();
        if !root.contains_key("source") {
            root.insert("source", Item::ArrayOfTables(ArrayOfTables::new()));
        }
        let list = root
            .get_mut("source")
            .and_then(Item::as_array_of_tables_mut)
            .ok_or_else(not_tables)?;
        list.push(source.table);
        // Comments at the very end of the file (after its last table) stay at the end: when
        // the new table lands last, they move in front of it, so that every line of the file
        // keeps its place and order.
        let trailing = self.doc.trailing().as_str().unwrap_or("").to_string();
        if !trailing.trim().is_empty() {
            let kept = self.text();
            self.doc.set_trailing("");
            let moved = self.last_source_mut().map(|table| {
                let prefix = table
                    .decor()
                    .prefix()
                    .and_then(|p| p.as_str())
                    .unwrap_or("");
                let prefix = format!("{trailing}{prefix}");
                table.decor_mut().set_prefix(prefix);
            });
            if moved.is_none() || !keeps_lines(&self.original, &self.text()) {
                self.doc = kept
                    .parse()
                    .map_err(|e: toml_edit::TomlError| EditError::Syntax {
                        file: self.file.clone(),
                        message: e.to_string(),
                    })?;
            }
        }
        Ok(())
    }

    fn last_source_mut(&mut self) -> Option<&mut Table> {
        self.doc
            .as_table_mut()
            .get_mut("source")
            .and_then(Item::as_array_of_tables_mut)
            .and_then(|list| list.iter_mut().last())
    }

    /// The edited text.
    pub fn text(&self) -> String {
        self.doc.to_string()
    }

    /// The edited configuration, read by the real loader: what `serve` would make of it.
    pub fn validate(&self) -> Result<Config, ConfigError> {
        Config::parse(&self.text(), &self.file)
    }

    /// Replaces the file with the edited text: a temp file in the same folder with the
    /// file's mode, flushed to disk, renamed over the file, and the folder flushed.
    pub fn write(&self) -> Result<(), EditError> {
        let mode = std::fs::metadata(&self.file)
            .map(|m| m.permissions().mode() & 0o7777)
            .map_err(|source| self.write_error(source))?;
        let temp = TempFile::create(&self.file, mode).map_err(|source| self.write_error(source))?;
        temp.fill(self.text().as_bytes())
            .map_err(|source| self.write_error(source))?;
        // The umask may have taken bits the file had.
        std::fs::set_permissions(&temp.path, std::fs::Permissions::from_mode(mode))
            .map_err(|source| self.write_error(source))?;
        // Another edit since this one read the file would be lost: refused instead.
        let now = std::fs::read_to_string(&self.file).map_err(|source| self.write_error(source))?;
        if now != self.original {
            return Err(EditError::Changed {
                file: self.file.clone(),
            });
        }
        std::fs::rename(&temp.path, &self.file).map_err(|source| self.write_error(source))?;
        temp.disarm();
        sync_parent(&self.file).map_err(|source| self.write_error(source))
    }

    fn write_error(&self, source: std::io::Error) -> EditError {
        EditError::Write {
            file: self.file.clone(),
            source,
        }
    }
}

/// Whether every line of `original` is in `edited`, in the same order.
pub fn keeps_lines(original: &str, edited: &str) -> bool {
    let mut edited = edited.lines();
    original
        .lines()
        .all(|line| edited.by_ref().any(|candidate| candidate == line))
}

/// Writes `text` as a new file at `file`, creating its folders; refused if `file` exists,
/// also when another process creates it at the same moment. The file appears whole: the text
/// is written to a temp file first and hard-linked under the name (which fails if the name
/// is taken); where hard links are not supported, the file is created with `O_EXCL`.
pub fn create_new(file: &Path, text: &str) -> Result<(), EditError> {
    let write_error = |source| EditError::Write {
        file: file.to_path_buf(),
        source,
    };
    let exists = || EditError::Exists {
        file: file.to_path_buf(),
    };
    if file.symlink_metadata().is_ok() {
        return Err(exists());
    }
    if let Some(parent) = file.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(write_error)?;
    }
    let temp = TempFile::create(file, 0o644).map_err(write_error)?;
    temp.fill(text.as_bytes()).map_err(write_error)?;
    match std::fs::hard_link(&temp.path, file) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => return Err(exists()),
        Err(_) => {
            let mut out = OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o644)
                .open(file)
                .map_err(|e| match e.kind() {
                    std::io::ErrorKind::AlreadyExists => exists(),
                    _ => write_error(e),
                })?;
            out.write_all(text.as_bytes())
                .and_then(|()| out.sync_all())
                .map_err(write_error)?;
        }
    }
    drop(temp);
    sync_parent(file).map_err(write_error)
}

/// A temp file next to a target, removed on drop unless renamed into place.
struct TempFile {
    path: PathBuf,
    file: File,
    armed: std::cell::Cell<bool>,
}

impl TempFile {
    fn create(target: &Path, mode: u32) -> std::io::Result<TempFile> {
        let name = target
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let folder = target.parent().filter(|p| !p.as_os_str().is_empty());
        let mut attempt = 0u32;
        loop {
            let temp_name = format!(
                ".{name}.{}.{}.tmp",
                std::process::id(),
                rand::random::<u32>()
            );
            let path = match folder {
                Some(folder) => folder.join(temp_name),
                None => PathBuf::from(temp_name),
            };
            match OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(mode)
                .open(&path)
            {
                Ok(file) => {
                    return Ok(TempFile {
                        path,
                        file,
                        armed: std::cell::Cell::new(true),
                    })
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && attempt < 16 => {
                    attempt += 1;
                }
                Err(e) => return Err(e),
            }
        }
    }

    fn fill(&self, bytes: &[u8]) -> std::io::Result<()> {
        let mut file = &self.file;
        file.write_all(bytes)?;
        file.sync_all()
    }

    /// The file was renamed into place: nothing to remove.
    fn disarm(&self) {
        self.armed.set(false);
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        if self.armed.get() {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// Makes a rename or link in `file`'s folder durable.
fn sync_parent(file: &Path) -> std::io::Result<()> {
    crate::atomic_file::sync_dir(file.parent().unwrap_or(Path::new(".")))
}

/// A `[[source]]` table being put together, each key with an optional trailing comment
/// aligned as in the shipped configuration.
pub struct NewTable {
    table: Table,
}

impl NewTable {
    /// An empty table whose header line carries `comment`, after a blank line.
    pub fn new(comment: &str) -> NewTable {
        let mut table = Table::new();
        table.set_implicit(false);
        let header = "[[source]]".len();
        table.decor_mut().set_prefix("\n");
        table
            .decor_mut()
            .set_suffix(format!("{}# {comment}", padding(header)));
        NewTable { table }
    }

    /// Sets `key` to `value`, with `comment` after it if given.
    pub fn set(&mut self, key: &str, value: impl Into<Value>, comment: Option<&str>) {
        let mut value: Value = value.into();
        value.decor_mut().set_prefix(" ");
        value.decor_mut().set_suffix("");
        if let Some(comment) = comment {
            let width = key.len() + " = ".len() + value.to_string().trim().len();
            value
                .decor_mut()
                .set_suffix(format!("{}# {comment}", padding(width)));
        }
        self.table.insert(key, Item::Value(value));
    }

    /// A list of strings.
    pub fn set_list(&mut self, key: &str, values: &[String], comment: Option<&str>) {
        let list: toml_edit::Array = values.iter().map(String::as_str).collect();
        self.set(key, list, comment);
    }
}

/// Spaces from a line of `width` characters to the comment column (at least two).
fn padding(width: usize) -> String {
    " ".repeat(COMMENT_COLUMN.saturating_sub(width).max(2))
}

#[cfg(test)]
mod tests {
    use super::*;

    const FILE: &str = "# top comment\ndata_dir = \"d\"   # where\n\n[server]\nhttp = []\n\n[[source]]  # first\nid = \"a\"\nkind = \"dir\"\nmount = \"/a\"\npath = \"/srv/a\"\n\n# the access rules\n[[access]]\npath = \"/a\"\nallow = [\"127.0.0.1\"]\n";

    fn document(text: &str) -> (tempfile::TempDir, ConfigDocument) {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("m.toml");
        std::fs::write(&file, text).unwrap();
        let doc = ConfigDocument::read(&file).unwrap();
        (dir, doc)
    }

    fn dir_source(id: &str) -> NewTable {
        let mut table = NewTable::new("a local directory");
        table.set("id", id, Some("the id"));
        table.set("kind", "dir", None);
        table.set("mount", format!("/{id}"), None);
        table.set("path", "/srv/b", None);
        table
    }

    #[test]
    fn a_source_goes_after_the_last_source_and_everything_else_stays() {
        let (_dir, mut doc) = document(FILE);
        doc.append_source(dir_source("b")).unwrap();
        let text = doc.text();
        let expected = FILE.replace(
            "path = \"/srv/a\"\n",
            "path = \"/srv/a\"\n\n[[source]]                              # a local directory\nid = \"b\"                                # the id\nkind = \"dir\"\nmount = \"/b\"\npath = \"/srv/b\"\n",
        );
        assert_eq!(text, expected);
        let config = doc.validate().unwrap();
        assert_eq!(config.sources.len(), 2);
        assert_eq!(config.access.len(), 1);
    }

    #[test]
    fn a_file_without_sources_gets_one_at_the_end() {
        let (_dir, mut doc) = document("data_dir = \"d\"\n# the end\n");
        doc.append_source(dir_source("b")).unwrap();
        let text = doc.text();
        assert!(
            text.starts_with("data_dir = \"d\"\n# the end\n\n[[source]]"),
            "{text}"
        );
        assert!(keeps_lines("data_dir = \"d\"\n# the end\n", &text));
        assert!(!keeps_lines("# the end\ndata_dir = \"d\"\n", &text));
        doc.validate().unwrap();
    }

    #[test]
    fn an_inline_source_list_is_refused() {
        let (_dir, mut doc) = document("data_dir = \"d\"\nsource = []\n");
        let err = doc.append_source(dir_source("b")).unwrap_err();
        assert!(err.to_string().contains("[[source]] table"), "{err}");
    }

    #[test]
    fn write_keeps_the_mode_and_create_new_refuses_an_existing_file() {
        let (_dir, mut doc) = document(FILE);
        std::fs::set_permissions(doc.file(), std::fs::Permissions::from_mode(0o600)).unwrap();
        doc.append_source(dir_source("b")).unwrap();
        doc.write().unwrap();
        let meta = std::fs::metadata(doc.file()).unwrap();
        assert_eq!(meta.permissions().mode() & 0o777, 0o600);
        assert_eq!(std::fs::read_to_string(doc.file()).unwrap(), doc.text());
        let folder = doc.file().parent().unwrap();
        assert_eq!(
            std::fs::read_dir(folder).unwrap().count(),
            1,
            "temp file left"
        );

        // A change by someone else since the read is not overwritten.
        let mut stale = ConfigDocument::read(doc.file()).unwrap();
        stale.append_source(dir_source("c")).unwrap();
        std::fs::write(doc.file(), doc.text() + "# edited meanwhile\n").unwrap();
        let err = stale.write().unwrap_err();
        assert!(matches!(err, EditError::Changed { .. }), "{err}");
        assert!(std::fs::read_to_string(doc.file())
            .unwrap()
            .ends_with("meanwhile\n"));
        std::fs::write(doc.file(), doc.text()).unwrap();
        assert_eq!(
            std::fs::read_dir(folder).unwrap().count(),
            1,
            "temp file left"
        );

        let err = create_new(doc.file(), "x").unwrap_err();
        assert!(matches!(err, EditError::Exists { .. }), "{err}");
        assert_eq!(std::fs::read_to_string(doc.file()).unwrap(), doc.text());
        let fresh = folder.join("a/b/new.toml");
        create_new(&fresh, "data_dir = \"d\"\n").unwrap();
        assert_eq!(
            std::fs::read_to_string(&fresh).unwrap(),
            "data_dir = \"d\"\n"
        );
        assert_eq!(
            std::fs::read_dir(fresh.parent().unwrap()).unwrap().count(),
            1
        );
    }
}
