//! Which keys a table allows and the nearest one to a typo. Allowed keys are read from
//! the raw serde structs themselves, so a field added to a struct is accepted and
//! suggested without a second list to keep in step.

use serde::de::{self, DeserializeOwned, Deserializer, Visitor};

/// The keys a raw struct accepts (serde names, renames applied), in declaration order;
/// empty for anything that is not a struct.
pub fn fields<T: DeserializeOwned>() -> &'static [&'static str] {
    let mut probe = FieldProbe(None);
    // The probe fails every call on purpose; the field list is recorded before that.
    let _ = T::deserialize(&mut probe);
    probe.0.unwrap_or(&[])
}

/// A deserializer that records the field list serde's derive hands to
/// `deserialize_struct` and deserializes nothing.
struct FieldProbe(Option<&'static [&'static str]>);

impl<'de> Deserializer<'de> for &mut FieldProbe {
    type Error = de::value::Error;

    fn deserialize_any<V: Visitor<'de>>(self, _visitor: V) -> Result<V::Value, Self::Error> {
        Err(de::Error::custom("not a struct"))
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        fields: &'static [&'static str],
        _visitor: V,
    ) -> Result<V::Value, Self::Error> {
        self.0 = Some(fields);
        Err(de::Error::custom("fields recorded"))
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes
        byte_buf option unit unit_struct newtype_struct seq tuple tuple_struct map enum
        identifier ignored_any
    }
}

/// The closest candidate by edit distance, if it is close enough to be a plausible typo.
pub fn closest<'c>(word: &str, candidates: impl Iterator<Item = &'c str>) -> Option<&'c str> {
    let limit = (word.chars().count() / 3).max(1);
    candidates
        .map(|c| (edit_distance(word, c), c))
        .filter(|(d, _)| *d <= limit)
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

/// Optimal string alignment distance: edits plus adjacent swaps, the commonest typo.
fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let width = b.len() + 1;
    let mut d = vec![0usize; (a.len() + 1) * width];
    for i in 0..=a.len() {
        d[i * width] = i;
    }
    for (j, cell) in d.iter_mut().enumerate().take(width) {
        *cell = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut best = (d[(i - 1) * width + j] + 1)
                .min(d[i * width + j - 1] + 1)
                .min(d[(i - 1) * width + j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                best = best.min(d[(i - 2) * width + j - 2] + 1);
            }
            d[i * width + j] = best;
        }
    }
    d[a.len() * width + b.len()]
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use serde::Deserialize;

    use super::{closest, fields};

    #[derive(Deserialize)]
    #[allow(dead_code)]
    struct Sample {
        first: Option<String>,
        #[serde(rename = "type")]
        kind: Option<String>,
        nested: Option<toml::Spanned<Vec<i64>>>,
    }

    #[test]
    fn fields_are_read_from_the_struct_in_declaration_order() {
        assert_eq!(fields::<Sample>(), ["first", "type", "nested"]);
        assert!(fields::<BTreeMap<String, i64>>().is_empty());
        assert!(fields::<String>().is_empty());
    }

    #[test]
    fn closest_accepts_typos_and_swaps_but_not_other_words() {
        let words = ["select", "insert", "update"];
        assert_eq!(closest("sellect", words.into_iter()), Some("select"));
        assert_eq!(closest("upadte", words.into_iter()), Some("update"));
        assert_eq!(closest("drop", words.into_iter()), None);
    }
}
