//! Object ids: the sha256 of an object's bytes, which is also its name on disk and its ETag.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// The sha256 of an object. Equal bytes have equal ids, whatever path or source named them.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ObjectId(pub [u8; 32]);

impl ObjectId {
    pub fn to_hex(self) -> String {
        let mut hex = [0u8; 64];
        hex::encode_to_slice(self.0, &mut hex).expect("64 digits for 32 bytes");
        String::from_utf8(hex.to_vec()).expect("hex digits are ASCII")
    }

    /// The first `chars` hex digits: enough to be unique in practice, short enough for URLs.
    pub fn short(&self, chars: usize) -> String {
        let mut hex = self.to_hex();
        hex.truncate(chars);
        hex
    }
}

impl fmt::Display for ObjectId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl fmt::Debug for ObjectId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ObjectId({})", self.short(16))
    }
}

#[derive(Debug, thiserror::Error)]
#[error("`{0}` is not a sha256 object id (64 hex digits)")]
pub struct BadObjectId(String);

impl FromStr for ObjectId {
    type Err = BadObjectId;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let mut bytes = [0u8; 32];
        hex::decode_to_slice(text.trim(), &mut bytes).map_err(|_| BadObjectId(text.into()))?;
        Ok(ObjectId(bytes))
    }
}

impl Serialize for ObjectId {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.to_hex())
    }
}

impl<'de> Deserialize<'de> for ObjectId {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trip() {
        let text = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
        let id: ObjectId = text.parse().unwrap();
        assert_eq!(id.to_hex(), text);
        assert_eq!(id.short(8), "e3b0c442");
        assert!("e3b0".parse::<ObjectId>().is_err());
        assert!(text.replace('e', "g").parse::<ObjectId>().is_err());
    }
}
