//! A run named on the command line (an id, a unique prefix, `last`, `last:<runbook>`):
//! the lookup the run commands share, and the "did you mean" for a name that finds no
//! run — a mistyped id or prefix, or a `last:` with a mistyped runbook.

use super::exit;
use super::output;
use super::session::Reported;
use crate::spec::values::closest;
use crate::state::{RunDetail, RunFilter, StateStore};

/// How many of the newest runs a mistyped id is compared with.
const CANDIDATES: i64 = 10_000;

/// The run `reference` names; an unknown one is reported (exit 2) with the closest
/// run id, or `last:<runbook>`, if one is close.
pub async fn load_run(state: &StateStore, reference: &str) -> Result<RunDetail, Reported> {
    match state.run(reference).await {
        Ok(Some(detail)) => Ok(detail),
        Ok(None) => {
            output::error(&no_run(state, reference, "").await);
            Err(Reported(exit::INVALID))
        }
        Err(e) => {
            output::error(&e.to_string());
            Err(Reported(exit::INVALID))
        }
    }
}

/// "no run `x`{what_else}", and "; did you mean `y`?" when a run is close to `x`.
pub async fn no_run(state: &StateStore, reference: &str, what_else: &str) -> String {
    let message = format!("no run `{reference}`{what_else}");
    // The runs are read only to help: if that fails, the message stands without a hint.
    let runs = state
        .find_runs(&RunFilter::default(), CANDIDATES)
        .await
        .unwrap_or_default();
    let suggestion = match reference.strip_prefix("last:") {
        Some(runbook) => {
            let mut runbooks: Vec<&str> = runs.iter().map(|r| r.runbook.as_str()).collect();
            runbooks.sort_unstable();
            runbooks.dedup();
            closest(runbook, runbooks).map(|r| format!("last:{r}"))
        }
        None => closest_id(reference, runs.iter().map(|r| r.id.as_str())).map(str::to_string),
    };
    match suggestion {
        Some(s) => format!("{message}; did you mean `{s}`?"),
        None => message,
    }
}

/// The one id whose start is a few typing mistakes from `reference` (edits and swapped
/// neighbours, case ignored): one mistake in an 8-character prefix, up to three in a
/// whole id. Run ids share their leading timestamp digits, so a looser measure would
/// match any id; two equally close ids are no suggestion.
fn closest_id<'a>(reference: &str, ids: impl Iterator<Item = &'a str>) -> Option<&'a str> {
    let reference = reference.to_ascii_lowercase();
    let length = reference.chars().count();
    let allowed = 1 + length / 16;
    let mut best: Option<(usize, &str)> = None;
    let mut tied = false;
    for id in ids {
        let start: String = id.chars().take(length).collect();
        let distance = strsim::osa_distance(&reference, &start);
        if distance > allowed {
            continue;
        }
        match best {
            Some((d, _)) if d < distance => {}
            Some((d, _)) if d == distance => tied = true,
            _ => {
                best = Some((distance, id));
                tied = false;
            }
        }
    }
    best.filter(|_| !tied).map(|(_, id)| id)
}

#[cfg(test)]
mod tests {
    use super::closest_id;

    const IDS: [&str; 3] = [
        "019ae3b4-7a10-7c21-9d3e-0a1b2c3d4e5f",
        "019ae3b4-7a11-7f00-8000-aaaaaaaaaaaa",
        "019ae9ff-0000-7000-8000-bbbbbbbbbbbb",
    ];

    #[test]
    fn one_typo_in_a_whole_id_or_a_prefix_finds_its_run() {
        let ids = || IDS.into_iter();
        // A changed character, a swap, a prefix in capitals with a changed character.
        assert_eq!(
            closest_id("019ae3b4-7a10-7c21-9d3e-0a1b2c3d4e5e", ids()),
            Some(IDS[0])
        );
        assert_eq!(
            closest_id("019ae3b4-7a10-7c21-9d3e-0a1b2c3d4ef5", ids()),
            Some(IDS[0])
        );
        assert_eq!(closest_id("019AE9FE", ids()), Some(IDS[2]));
    }

    #[test]
    fn a_stranger_or_a_tie_gets_no_suggestion() {
        let ids = || IDS.into_iter();
        assert_eq!(closest_id("deadbeef-0000", ids()), None);
        assert_eq!(
            closest_id("zzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzz", ids()),
            None
        );
        // Both of the first two start this way: either could be meant.
        assert_eq!(closest_id("019ae3b5", ids()), None);
    }
}
