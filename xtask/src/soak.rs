//! `cargo xtask soak [--kills N]`: the crash torture suite (tests/torture.rs) for far
//! longer than `cargo test` runs it: rounds of crashed runs under fresh seeds until at
//! least N kills (default 2,000), then one summary (kills, runs, failures, seeds).

use std::process::Command;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, bail};

use crate::{cargo, describe, root};

/// Crashed runs per runbook per round: a round is one `cargo test --test torture`.
const CASES_PER_ROUND: u64 = 25;

/// Totals of the `torture summary:` lines the suite prints, one per runbook.
#[derive(Default, Debug, PartialEq)]
struct Totals {
    runs: u64,
    kills: u64,
    failures: u64,
}

impl Totals {
    fn add_summaries(&mut self, output: &str) {
        for line in output.lines().filter(|l| l.starts_with("torture summary:")) {
            self.runs += figure(line, "runs");
            self.kills += figure(line, "kills");
            self.failures += figure(line, "failures");
        }
    }
}

/// The number after `| <name> ` in a summary line; 0 when absent.
fn figure(line: &str, name: &str) -> u64 {
    line.split('|')
        .map(str::trim)
        .find_map(|part| part.strip_prefix(name)?.trim().parse().ok())
        .unwrap_or(0)
}

fn kills_wanted(args: &[String]) -> Result<u64> {
    match args {
        [] => Ok(2_000),
        [flag, n] if flag == "--kills" => n
            .parse()
            .with_context(|| format!("--kills wants a number, not `{n}`")),
        _ => bail!("usage: cargo xtask soak [--kills N]"),
    }
}

pub fn soak(args: &[String]) -> Result<()> {
    let wanted = kills_wanted(args)?;
    let first_seed = match std::env::var("RUNBOOK_TORTURE_SEED") {
        Ok(seed) => seed.parse().context("RUNBOOK_TORTURE_SEED")?,
        Err(_) => SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs(),
    };
    let started = Instant::now();
    let mut totals = Totals::default();
    let mut failed_seeds = Vec::new();
    let mut seed = first_seed;
    while totals.kills < wanted {
        let mut command = cargo();
        command
            .current_dir(root())
            .env("RUNBOOK_TORTURE_SEED", seed.to_string())
            .env("RUNBOOK_TORTURE_CASES", CASES_PER_ROUND.to_string())
            .args([
                "test",
                "-p",
                "runbook",
                "--test",
                "torture",
                "--",
                "--nocapture",
            ]);
        eprintln!("$ RUNBOOK_TORTURE_SEED={seed} {}", describe(&command));
        let out = output_of(&mut command)?;
        let text = String::from_utf8_lossy(&out.stderr).into_owned()
            + &String::from_utf8_lossy(&out.stdout);
        let mut round = Totals::default();
        round.add_summaries(&text);
        if round.runs == 0 {
            eprintln!("{text}");
            bail!("the torture suite printed no summary (seed {seed})");
        }
        for line in text
            .lines()
            .filter(|l| l.contains(": seed ") && l.contains(" kills ["))
        {
            eprintln!("FAILED {line}");
        }
        if round.failures > 0 {
            failed_seeds.push(seed);
        }
        eprintln!(
            "seed {seed}: {} runs, {} kills, {} failures",
            round.runs, round.kills, round.failures
        );
        totals.runs += round.runs;
        totals.kills += round.kills;
        totals.failures += round.failures;
        seed += 1;
    }
    println!(
        "soak: {} kills over {} crashed runs in {:.0?}, {} failures; seeds {first_seed}..={} ({} cases per runbook each){}",
        totals.kills,
        totals.runs,
        started.elapsed(),
        totals.failures,
        seed - 1,
        CASES_PER_ROUND,
        if failed_seeds.is_empty() {
            String::new()
        } else {
            format!("; failing seeds {failed_seeds:?}")
        }
    );
    if totals.failures > 0 {
        bail!("{} crashed runs broke exactly-once", totals.failures);
    }
    Ok(())
}

fn output_of(command: &mut Command) -> Result<std::process::Output> {
    command
        .output()
        .with_context(|| format!("cannot start {}", describe(command)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sums_the_summary_lines() {
        let mut t = Totals::default();
        t.add_summaries(
            "noise\ntorture summary: issue-refund (SQLite) | seed 7 | sites 30 | runs 25 | kills 41 | failures 0\n\
             torture summary: x | seed 7 | sites 9 | runs 25 | kills 40 | failures 2\n",
        );
        assert_eq!(
            t,
            Totals {
                runs: 50,
                kills: 81,
                failures: 2
            }
        );
    }

    #[test]
    fn reads_the_kill_count() {
        assert_eq!(kills_wanted(&[]).unwrap(), 2_000);
        assert_eq!(
            kills_wanted(&["--kills".into(), "300".into()]).unwrap(),
            300
        );
        assert!(kills_wanted(&["--kills".into(), "x".into()]).is_err());
        assert!(kills_wanted(&["300".into()]).is_err());
    }
}
