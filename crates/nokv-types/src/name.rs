//! Name and path rules, enforced at every front door before anything
//! reaches the metadata engine.
//!
//! A name is 1..=255 bytes, contains neither `/` nor NUL, and is not
//! `.` or `..`. A path is absolute inside the volume: `.` components and
//! repeated slashes are dropped, `..` is resolved lexically, and a path
//! whose `..` would climb above the volume root is refused.

use crate::{Error, Result};

/// Longest name in bytes.
pub const MAX_NAME_LEN: usize = 255;

/// Checks that `name` is one valid directory-entry name.
pub fn validate_name(name: &[u8]) -> Result<()> {
    let shown = || String::from_utf8_lossy(name).into_owned();
    if name.is_empty() {
        return Err(Error::InvalidName {
            name: String::new(),
            reason: "empty",
        });
    }
    if name.len() > MAX_NAME_LEN {
        return Err(Error::NameTooLong(name.len()));
    }
    if name == b"." || name == b".." {
        return Err(Error::InvalidName {
            name: shown(),
            reason: "`.` and `..` are not names",
        });
    }
    if name.contains(&b'/') {
        return Err(Error::InvalidName {
            name: shown(),
            reason: "contains '/'",
        });
    }
    if name.contains(&0) {
        return Err(Error::InvalidName {
            name: shown(),
            reason: "contains NUL",
        });
    }
    Ok(())
}

/// A normalized path inside a volume: a list of valid names from the
/// root. The root itself is the empty list.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NokvPath {
    components: Vec<Vec<u8>>,
}

impl NokvPath {
    /// The volume root.
    pub fn root() -> NokvPath {
        NokvPath {
            components: Vec::new(),
        }
    }

    /// Parses a path given by a user. Leading `/` is optional (paths are
    /// always taken from the volume root).
    pub fn parse(path: &str) -> Result<NokvPath> {
        Self::parse_bytes(path.as_bytes())
    }

    /// Parses a path given as bytes (see [`NokvPath::parse`]).
    pub fn parse_bytes(path: &[u8]) -> Result<NokvPath> {
        let shown = || String::from_utf8_lossy(path).into_owned();
        if path.is_empty() {
            return Err(Error::InvalidPath {
                path: String::new(),
                reason: "empty path",
            });
        }
        if path.contains(&0) {
            return Err(Error::InvalidPath {
                path: shown(),
                reason: "contains NUL",
            });
        }
        let mut components: Vec<Vec<u8>> = Vec::new();
        for part in path.split(|b| *b == b'/') {
            match part {
                b"" | b"." => {}
                b".." => {
                    if components.pop().is_none() {
                        return Err(Error::InvalidPath {
                            path: shown(),
                            reason: "escapes the volume root",
                        });
                    }
                }
                name => {
                    validate_name(name)?;
                    components.push(name.to_vec());
                }
            }
        }
        Ok(NokvPath { components })
    }

    pub fn is_root(&self) -> bool {
        self.components.is_empty()
    }

    pub fn components(&self) -> &[Vec<u8>] {
        &self.components
    }

    /// The last component (None for the root).
    pub fn file_name(&self) -> Option<&[u8]> {
        self.components.last().map(|c| c.as_slice())
    }

    /// The parent path (None for the root).
    pub fn parent(&self) -> Option<NokvPath> {
        if self.components.is_empty() {
            return None;
        }
        Some(NokvPath {
            components: self.components[..self.components.len() - 1].to_vec(),
        })
    }

    /// This path with one more component.
    pub fn join(&self, name: &[u8]) -> Result<NokvPath> {
        validate_name(name)?;
        let mut components = self.components.clone();
        components.push(name.to_vec());
        Ok(NokvPath { components })
    }

    /// True when `self` is `other` or lies below it.
    pub fn starts_with(&self, other: &NokvPath) -> bool {
        self.components.starts_with(&other.components)
    }
}

impl std::fmt::Display for NokvPath {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.components.is_empty() {
            return f.write_str("/");
        }
        for c in &self.components {
            write!(f, "/{}", String::from_utf8_lossy(c))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn names() {
        assert!(validate_name(b"a").is_ok());
        assert!(validate_name(&[b'x'; 255]).is_ok());
        assert!(matches!(
            validate_name(&[b'x'; 256]),
            Err(Error::NameTooLong(256))
        ));
        for bad in [&b""[..], b".", b"..", b"a/b", b"a\0b"] {
            assert!(validate_name(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn paths() {
        assert_eq!(NokvPath::parse("/").unwrap(), NokvPath::root());
        assert_eq!(NokvPath::parse("a//b/./c").unwrap().to_string(), "/a/b/c");
        assert_eq!(NokvPath::parse("/a/b/../c").unwrap().to_string(), "/a/c");
        assert!(NokvPath::parse("/..").is_err());
        assert!(NokvPath::parse("/a/../..").is_err());
        assert!(NokvPath::parse("").is_err());
        assert!(NokvPath::parse_bytes(b"/a\0").is_err());
        let p = NokvPath::parse("/a/b").unwrap();
        assert!(p.starts_with(&NokvPath::parse("/a").unwrap()));
        assert!(!NokvPath::parse("/ab")
            .unwrap()
            .starts_with(&NokvPath::parse("/a").unwrap()));
    }

    proptest! {
        #[test]
        fn parse_never_panics_and_yields_valid_names(s in "[a-z./\\x00]{0,40}") {
            if let Ok(p) = NokvPath::parse(&s) {
                for c in p.components() {
                    prop_assert!(validate_name(c).is_ok());
                }
                let again = NokvPath::parse(&p.to_string()).unwrap();
                prop_assert_eq!(again, p);
            }
        }
    }
}
