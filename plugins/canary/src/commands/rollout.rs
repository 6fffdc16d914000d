//! `rollout`: weights raised step by step, with the progress kept in an annotation on the canary
//! object so that a rerun resumes, and an abort when a verify check fails.

use std::time::Duration;

use k8s_openapi::jiff::Timestamp;
use shared::{Error, Result};

use crate::annotations::CanaryRules;
use crate::cli::{DryRun, RolloutArgs};
use crate::cluster::Cluster;
use crate::commands::modify::{abort_canary, apply_change};
use crate::commands::promote::promote;
use crate::commands::verify::measure;
use crate::target::{self, Canary, RolloutState};
use crate::verify::{Classifier, Probe};
use crate::weight;

/// Phase of a rollout that is moving on.
const PROGRESSING: &str = "Progressing";
/// Phase of a rollout stopped by `--pause`.
const PAUSED: &str = "Paused";
/// Phase of a finished rollout.
const COMPLETED: &str = "Completed";

/// Returns the rollout state stored on the canary object.
fn stored_state(canary: &Canary) -> Option<RolloutState> {
    match canary {
        Canary::Nginx(pair) => pair
            .canary
            .as_ref()
            .and_then(|c| target::rollout_state(c.metadata.annotations.as_ref())),
        Canary::Gateway(route) => target::rollout_state(route.route.metadata.annotations.as_ref()),
    }
}

/// Decides where a rollout starts: a fresh state, or the stored one when it is still running
/// with the same steps.
pub fn starting_state(
    stored: Option<RolloutState>,
    steps: &[u32],
    now: &str,
) -> std::result::Result<RolloutState, String> {
    match stored {
        Some(state) if state.phase == PROGRESSING || state.phase == PAUSED => {
            if state.steps != steps {
                let recorded: Vec<String> = state.steps.iter().map(u32::to_string).collect();
                return Err(format!(
                    "a rollout with --steps {} is in progress: pass the same steps to resume it, or run kubectl canary abort first",
                    recorded.join(",")
                ));
            }
            Ok(state)
        }
        _ => Ok(RolloutState {
            steps: steps.to_vec(),
            applied: 0,
            phase: PROGRESSING.to_string(),
            started_at: now.to_string(),
            updated_at: now.to_string(),
            message: None,
        }),
    }
}

/// Returns how long to wait before checking the current step: the interval minus the time that
/// has passed since the step was applied.
pub fn remaining_wait(interval: Duration, updated_at: &str, now: Timestamp) -> Duration {
    let Ok(updated) = updated_at.parse::<Timestamp>() else {
        return interval;
    };
    let elapsed = now.duration_since(updated);
    let elapsed = Duration::try_from(elapsed).unwrap_or(Duration::ZERO);
    interval.saturating_sub(elapsed)
}

/// Returns the share of requests the canary should receive at `step_weight` under `rules`.
fn expected_share(canary: &Canary, step_weight: u32, rules: &CanaryRules) -> f64 {
    match canary {
        Canary::Nginx(_) => weight::canary_share(step_weight, rules.total),
        Canary::Gateway(_) => (f64::from(step_weight) / f64::from(rules.total)).min(1.0),
    }
}

/// Runs `rollout`.
pub async fn run(cluster: &Cluster, args: &RolloutArgs) -> Result<()> {
    if args.steps.0.is_empty() {
        return Err(Error::usage(
            "missing --steps: give the weights to go through, such as --steps 10,25,50,100",
        ));
    }
    let canary = target::resolve(cluster, &args.target).await?;
    let rules = canary.require_rules()?;
    if let Some(&last) = args.steps.0.last() {
        weight::check_weight(last, rules.total)
            .map_err(|m| Error::usage(format!("invalid --steps: {m}")))?;
    }
    let verifier = verifier(args)?;

    let now = Timestamp::now();
    let mut state = starting_state(stored_state(&canary), &args.steps.0, &now.to_string())
        .map_err(Error::usage)?;
    let resumed_from_pause = state.phase == PAUSED;
    if state.applied > 0 {
        eprintln!(
            "resuming the rollout of {} at step {}/{}",
            canary.primary_name(),
            state.applied,
            state.steps.len()
        );
    }

    // A step applied by an earlier run still needs its interval and check, unless it was paused.
    if state.applied > 0 && !resumed_from_pause {
        tokio::time::sleep(remaining_wait(
            args.interval,
            &state.updated_at,
            Timestamp::now(),
        ))
        .await;
    }
    if state.applied > 0 {
        check_step(cluster, &canary, &verifier, &state, &rules).await?;
    }

    while state.applied < state.steps.len() {
        let step_weight = state.steps[state.applied];
        state.applied += 1;
        state.phase = if args.pause && state.applied < state.steps.len() {
            PAUSED
        } else {
            PROGRESSING
        }
        .to_string();
        state.updated_at = Timestamp::now().to_string();
        save_step(cluster, &canary, step_weight, &state).await?;
        shared::output::print(&format!(
            "step {}/{}: weight {step_weight}/{}\n",
            state.applied,
            state.steps.len(),
            rules.total
        ))?;

        if state.phase == PAUSED {
            eprintln!(
                "rollout paused after step {}/{}: run the same command again to continue",
                state.applied,
                state.steps.len()
            );
            return Ok(());
        }
        tokio::time::sleep(args.interval).await;
        check_step(cluster, &canary, &verifier, &state, &rules).await?;
    }

    state.phase = COMPLETED.to_string();
    state.updated_at = Timestamp::now().to_string();
    let last = *state.steps.last().expect("steps checked non-empty");
    save_step(cluster, &canary, last, &state).await?;
    shared::output::print(&format!(
        "rollout of {} completed at weight {last}/{}\n",
        canary.primary_name(),
        rules.total
    ))?;
    if args.promote {
        let fresh = target::resolve(cluster, &args.target).await?;
        promote(cluster, &fresh, DryRun::None).await?;
    }
    Ok(())
}

/// The verify settings of a rollout.
struct Verifier {
    probe: Probe,
    classifier: Classifier,
    requests: u64,
    max_failures: u64,
}

fn verifier(args: &RolloutArgs) -> Result<Option<Verifier>> {
    let Some(url) = &args.verify.verify_url else {
        return Ok(None);
    };
    let classifier = Classifier::from_flags(
        args.verify.verify_canary_match.as_deref(),
        args.verify.verify_canary_header.as_deref(),
    )
    .map_err(|m| Error::usage(m.replace("--canary", "--verify-canary")))?;
    if args.verify.verify_requests == 0 {
        return Err(Error::usage("invalid --verify-requests 0: send at least 1"));
    }
    Ok(Some(Verifier {
        probe: Probe {
            url: url.clone(),
            host: args.verify.verify_host.clone(),
            headers: args.verify.verify_header.clone(),
            cookies: Vec::new(),
            timeout: Duration::from_secs(10),
            ca_pem: match &args.verify.verify_certificate_authority {
                Some(path) => Some(std::fs::read(path).map_err(|error| {
                    Error::usage(format!(
                        "failed to read --verify-certificate-authority {}: {error}",
                        path.display()
                    ))
                })?),
                None => None,
            },
            insecure: args.verify.verify_insecure_skip_tls_verify,
        },
        classifier,
        requests: args.verify.verify_requests,
        max_failures: args.verify.verify_max_failures,
    }))
}

/// Writes the weight of a step together with the rollout state in one update.
async fn save_step(
    cluster: &Cluster,
    canary: &Canary,
    step_weight: u32,
    state: &RolloutState,
) -> Result<()> {
    let mut change = |rules: &mut CanaryRules, rollout: &mut Option<RolloutState>| {
        rules.weight = step_weight;
        *rollout = Some(state.clone());
        Ok(())
    };
    apply_change(cluster, canary, DryRun::None, &mut change)
        .await
        .map(|_| ())
}

/// Verifies the current step; on disagreement aborts the canary and fails.
async fn check_step(
    cluster: &Cluster,
    canary: &Canary,
    verifier: &Option<Verifier>,
    state: &RolloutState,
    rules: &CanaryRules,
) -> Result<()> {
    let Some(verifier) = verifier else {
        return Ok(());
    };
    let step_weight = state.steps[state.applied - 1];
    let expected = expected_share(canary, step_weight, rules);
    let outcome = measure(
        &verifier.probe,
        &verifier.classifier,
        verifier.requests,
        Some(expected),
    )
    .await;
    let problem = match &outcome {
        Ok(report) if report.agrees == Some(false) => {
            let interval = report.interval.expect("agrees implies an interval");
            Some(format!(
                "verify at step {}/{} found {:.1}% canary responses (95% interval {:.1}% to {:.1}%) where weight {step_weight} expects {:.1}%",
                state.applied,
                state.steps.len(),
                interval.share * 100.0,
                interval.low * 100.0,
                interval.high * 100.0,
                expected * 100.0
            ))
        }
        Ok(report) if report.tally.failed > verifier.max_failures => Some(format!(
            "verify at step {}/{} had {} failed requests of {}, more than --verify-max-failures {} (first failure: {})",
            state.applied,
            state.steps.len(),
            report.tally.failed,
            report.requests,
            verifier.max_failures,
            report.tally.first_error.as_deref().unwrap_or("unknown")
        )),
        Ok(_) => None,
        Err(error) => Some(format!(
            "verify at step {}/{} failed: {error}",
            state.applied,
            state.steps.len()
        )),
    };
    if let Ok(report) = &outcome {
        shared::output::print(&crate::verify::render(report))?;
    }
    let Some(problem) = problem else {
        return Ok(());
    };

    abort_canary(cluster, canary, DryRun::None, &problem).await?;
    Err(Error::failed(format!(
        "{problem}; rollout aborted, all traffic is back on stable"
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(phase: &str, steps: &[u32], applied: usize) -> RolloutState {
        RolloutState {
            steps: steps.to_vec(),
            applied,
            phase: phase.to_string(),
            started_at: "2026-01-01T00:00:00Z".into(),
            updated_at: "2026-01-01T00:00:00Z".into(),
            message: None,
        }
    }

    #[test]
    fn running_rollout_resumes() {
        let resumed =
            starting_state(Some(state(PROGRESSING, &[10, 50], 1)), &[10, 50], "now").unwrap();
        assert_eq!(resumed.applied, 1);
        assert_eq!(resumed.started_at, "2026-01-01T00:00:00Z");
    }

    #[test]
    fn finished_rollout_starts_over() {
        for phase in [COMPLETED, "Aborted"] {
            let fresh = starting_state(Some(state(phase, &[10, 50], 2)), &[10, 50], "now").unwrap();
            assert_eq!(fresh.applied, 0, "{phase}");
            assert_eq!(fresh.started_at, "now");
        }
    }

    #[test]
    fn other_steps_rejected_while_running() {
        let error =
            starting_state(Some(state(PAUSED, &[10, 50], 1)), &[20, 50], "now").unwrap_err();
        assert!(error.contains("--steps 10,50 is in progress"), "{error}");
    }

    #[test]
    fn wait_shrinks_with_elapsed_time() {
        let now: Timestamp = "2026-01-01T00:00:30Z".parse().unwrap();
        assert_eq!(
            remaining_wait(Duration::from_secs(120), "2026-01-01T00:00:00Z", now),
            Duration::from_secs(90)
        );
        assert_eq!(
            remaining_wait(Duration::from_secs(10), "2026-01-01T00:00:00Z", now),
            Duration::ZERO
        );
        assert_eq!(
            remaining_wait(Duration::from_secs(10), "garbage", now),
            Duration::from_secs(10)
        );
    }
}
