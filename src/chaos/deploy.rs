//! The Deployment `chaos-web` scaled and rolled during a real-node run: a
//! driver, seeded from the run's seed (a run replays its spec changes), that
//! every 2-5 s either scales the Deployment (2..=6 replicas) or rolls it (a
//! template change: `CHAOS_REV`, a generation counter, in its container's
//! env), through the API with retries under failover. A write whose outcome
//! is unknown is read back, never blindly repeated: every write is an update
//! with the resourceVersion just read, so a late write of an old attempt
//! conflicts rather than lands twice.
//!
//! Every spec change is recorded ([`SpecChange`]); the rolling-update
//! fences are checked on the sampler's counts ([`fences`], pure): between
//! two samples, the pods not terminating stay within the replicas (any in
//! effect meanwhile) plus maxSurge unless there were already more, and the
//! Ready ones do not fall below the replicas less maxUnavailable unless
//! there were already fewer. Samples while a node fault is active (or
//! settling) are excused.

use super::pods::{self, Want, DEPLOYMENT, NS};
use crate::objects::api::{status_of, Api};
use ferry_api::resources::by_cli_name;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::Serialize;
use serde_json::{json, Value};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The replica counts the driver scales between.
pub const MIN_REPLICAS: usize = 2;
pub const MAX_REPLICAS: usize = 6;
/// The pause before each spec change, in ms.
const PAUSE_MS: std::ops::Range<u64> = 2000..5000;
/// How long a spec change stays in effect after the next one was
/// acknowledged, for the fences: the controllers may act on it until they
/// see the next.
pub const CONTROLLER_LAG: Duration = Duration::from_secs(3);
/// How long after a node fault's heal its effects (pods marked not Ready,
/// evictions, replacements) may still show: the fences are excused.
pub const NODE_SETTLE: Duration = Duration::from_secs(10);
/// How long the driver tries one change before giving up on it.
const CHANGE_BUDGET: Duration = Duration::from_secs(20);

/// One step of the driver's schedule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Action {
    /// Scale to this many replicas.
    Scale(usize),
    /// A template change: the next `CHAOS_REV`.
    Roll,
}

/// The driver's schedule from a seed: (pause before it in ms, the action,
/// the spec after it), starting from `start`. Pure: a seed replays.
pub fn schedule(seed: u64, start: Want, n: usize) -> Vec<(u64, Action, Want)> {
    let mut rng = StdRng::seed_from_u64(seed ^ 0xd1b5_4a32_d192_ed03);
    let mut want = start;
    (0..n)
        .map(|_| {
            let pause = rng.gen_range(PAUSE_MS);
            let action = if rng.gen_bool(0.5) {
                want.rev += 1;
                Action::Roll
            } else {
                // Another count than the current one.
                let mut r = rng.gen_range(MIN_REPLICAS..MAX_REPLICAS);
                if r >= want.replicas {
                    r += 1;
                }
                want.replicas = r;
                Action::Scale(r)
            };
            (pause, action, want)
        })
        .collect()
}

/// One spec change of the Deployment, as the driver made it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SpecChange {
    /// `create`, `scale` or `roll`.
    pub action: String,
    pub replicas: usize,
    /// The template's `CHAOS_REV`.
    pub rev: u64,
    /// The first attempt's start (ns since the run's start).
    pub invoke_ns: u64,
    /// When it was acknowledged or read back as applied; `None`: unknown
    /// (the driver stopped or gave up first).
    pub complete_ns: Option<u64>,
    /// Writes sent (conflicts and unknown outcomes retried).
    pub attempts: u32,
    /// Why it was not applied (a refusal, or the last error).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// The Deployment's spec as `Want` (replicas and template rev).
pub fn want_of(d: &Value) -> Want {
    Want {
        replicas: d
            .pointer("/spec/replicas")
            .and_then(Value::as_u64)
            .unwrap_or(1) as usize,
        rev: pods::rev_of(&d["spec"]["template"]),
    }
}

/// `d` with the spec `want` (the replicas, and `CHAOS_REV` in the first
/// container's env).
fn with_want(mut d: Value, want: Want) -> Value {
    d["spec"]["replicas"] = json!(want.replicas);
    let c = &mut d["spec"]["template"]["spec"]["containers"][0];
    let mut env: Vec<Value> = c["env"].as_array().cloned().unwrap_or_default();
    env.retain(|e| e["name"] != pods::REV_ENV);
    env.push(json!({"name": pods::REV_ENV, "value": want.rev.to_string()}));
    c["env"] = Value::Array(env);
    d
}

/// Makes the Deployment's spec `want`: read, then update with that
/// resourceVersion; a conflict or an unknown outcome reads again (done when
/// the read shows `want`), a refusal gives up. Returns the attempts and the
/// error, if not applied.
async fn apply(api: &Api, want: Want, stop: &AtomicBool) -> (u32, Option<String>) {
    let res = by_cli_name("deployments").expect("served");
    let until = Instant::now() + CHANGE_BUDGET;
    let mut attempts = 0;
    let mut last = String::from("no answer");
    while Instant::now() < until && !stop.load(Ordering::Relaxed) {
        let d = match api.get(res, Some(NS), DEPLOYMENT).await {
            Ok(Some(d)) => d,
            Ok(None) => return (attempts, Some(format!("Deployment {DEPLOYMENT} is gone"))),
            Err(e) => {
                last = format!("{e:#}");
                tokio::time::sleep(Duration::from_millis(250)).await;
                continue;
            }
        };
        if want_of(&d) == want {
            return (attempts, None);
        }
        attempts += 1;
        match api
            .update(res, Some(NS), DEPLOYMENT, &with_want(d, want))
            .await
        {
            Ok(_) => return (attempts, None),
            // Someone (the controller's status) wrote meanwhile: read again.
            Err(e) if status_of(&e).is_some_and(|s| s.code == 409) => last = format!("{e:#}"),
            Err(e) if status_of(&e).is_some_and(|s| s.code < 500) => {
                return (attempts, Some(format!("refused: {e:#}")))
            }
            // Unknown outcome: read it back.
            Err(e) => {
                last = format!("{e:#}");
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
        }
    }
    (attempts, Some(last))
}

/// Runs the schedule of `seed` until `stop`: each change applied, recorded
/// in `changes` (the first entry, the creation, is there already) and, once
/// applied, made the sampler's desired spec (`want`).
pub fn driver(
    api: Api,
    seed: u64,
    want: Arc<Mutex<Want>>,
    changes: Arc<Mutex<Vec<SpecChange>>>,
    stop: Arc<AtomicBool>,
    now_ns: impl Fn() -> u64 + Send + 'static,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let start = *want.lock().expect("want");
        for (pause, action, target) in schedule(seed, start, 10_000) {
            let until = Instant::now() + Duration::from_millis(pause);
            while Instant::now() < until {
                if stop.load(Ordering::Relaxed) {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            let invoke_ns = now_ns();
            let (attempts, error) = apply(&api, target, &stop).await;
            let complete_ns = error.is_none().then(&now_ns);
            if error.is_none() {
                *want.lock().expect("want") = target;
            }
            changes.lock().expect("changes").push(SpecChange {
                action: match action {
                    Action::Scale(_) => "scale",
                    Action::Roll => "roll",
                }
                .into(),
                replicas: target.replicas,
                rev: target.rev,
                invoke_ns,
                complete_ns,
                attempts,
                error,
            });
            // A change not known applied: the next ones build on the
            // schedule's spec all the same (the final check reads back
            // the spec that holds).
        }
    })
}

/// One sample of the Deployment's pods: (time, not terminating, of those Ready).
pub type FenceSample = (u64, usize, usize);

/// The rolling-update fences over the samples (in time order): for each
/// sample after another, with `rs` the replica counts in effect between
/// them (each change from its invoke to [`CONTROLLER_LAG`] after the next
/// one completed; a change never completed stays in effect):
/// live ≤ max(live before, max(rs) + `surge`) and
/// ready ≥ min(ready before, min(rs) − `unavailable`).
/// Samples in an `excused` window (node faults), and the first one after
/// it, are not checked. Returns each breach, described.
pub fn fences(
    changes: &[SpecChange],
    samples: &[FenceSample],
    excused: &[(u64, u64)],
    surge: usize,
    unavailable: usize,
) -> Vec<String> {
    let lag = CONTROLLER_LAG.as_nanos() as u64;
    let mut out = Vec::new();
    let mut prev: Option<FenceSample> = None;
    for &(t, live, ready) in samples {
        if excused.iter().any(|&(a, b)| t >= a && t <= b) {
            prev = None;
            continue;
        }
        let Some((tp, live_p, ready_p)) = prev.replace((t, live, ready)) else {
            continue;
        };
        let rs: Vec<usize> = changes
            .iter()
            .enumerate()
            .filter(|&(i, c)| {
                c.invoke_ns <= t
                    && changes.get(i + 1).is_none_or(|n| {
                        n.complete_ns
                            .is_none_or(|done| done.saturating_add(lag) >= tp)
                    })
            })
            .map(|(_, c)| c.replicas)
            .collect();
        let (Some(&hi), Some(&lo)) = (rs.iter().max(), rs.iter().min()) else {
            continue;
        };
        if live > live_p.max(hi + surge) {
            out.push(format!(
                "at {:.1}s: {live} {DEPLOYMENT} pods live (were {live_p}), more than replicas+maxSurge ({hi}+{surge})",
                t as f64 / 1e9
            ));
        }
        if ready < ready_p.min(lo.saturating_sub(unavailable)) {
            out.push(format!(
                "at {:.1}s: {ready} {DEPLOYMENT} pods Ready (were {ready_p}), fewer than replicas-maxUnavailable ({lo}-{unavailable})",
                t as f64 / 1e9
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const START: Want = Want {
        replicas: 4,
        rev: 0,
    };

    #[test]
    fn the_schedule_replays_from_its_seed_and_scales_and_rolls() {
        let a = schedule(7, START, 50);
        assert_eq!(a, schedule(7, START, 50));
        assert_ne!(a, schedule(8, START, 50));
        let mut prev = START;
        for &(pause, action, want) in &a {
            assert!(PAUSE_MS.contains(&pause), "{pause}");
            match action {
                Action::Scale(r) => {
                    assert_ne!(r, prev.replicas, "a scale changes the count");
                    assert!((MIN_REPLICAS..=MAX_REPLICAS).contains(&r), "{r}");
                    assert_eq!(
                        want,
                        Want {
                            replicas: r,
                            ..prev
                        }
                    );
                }
                Action::Roll => assert_eq!(
                    want,
                    Want {
                        rev: prev.rev + 1,
                        ..prev
                    }
                ),
            }
            prev = want;
        }
        assert!(a.iter().any(|s| s.1 == Action::Roll));
        assert!(a.iter().any(|s| matches!(s.1, Action::Scale(_))));
    }

    #[test]
    fn a_spec_is_written_into_and_read_from_a_deployment() {
        let d = json!({"spec": {"replicas": 4, "template": {"spec": {"containers": [
            {"name": "c", "env": [{"name": "POD_NAME", "value": "x"}]}]}}}});
        assert_eq!(want_of(&d), START);
        let w = Want {
            replicas: 6,
            rev: 3,
        };
        let d = with_want(d, w);
        assert_eq!(want_of(&d), w);
        let d = with_want(d, Want { rev: 4, ..w });
        let env = d["spec"]["template"]["spec"]["containers"][0]["env"]
            .as_array()
            .unwrap();
        assert_eq!(env.len(), 2, "{env:?}");
    }

    fn change(replicas: usize, invoke_s: u64, done_s: Option<u64>) -> SpecChange {
        SpecChange {
            action: "scale".into(),
            replicas,
            rev: 0,
            invoke_ns: invoke_s * 1_000_000_000,
            complete_ns: done_s.map(|s| s * 1_000_000_000),
            attempts: 1,
            error: None,
        }
    }

    fn s(t: u64, live: usize, ready: usize) -> FenceSample {
        (t * 1_000_000_000, live, ready)
    }

    #[test]
    fn fences_hold_through_a_roll_and_scales() {
        let changes = [change(4, 0, Some(0)), change(6, 10, Some(10))];
        // A roll at 4 (live ≤ 5, ready ≥ 3), then a scale up to 6.
        let ok = [
            s(1, 4, 4),
            s(2, 5, 4),
            s(3, 5, 3),
            s(4, 4, 4),
            s(11, 6, 4),
            s(12, 7, 5),
            s(13, 6, 6),
        ];
        assert!(fences(&changes, &ok, &[], 1, 1).is_empty());
        // A sixth live pod during the roll at 4 replicas.
        let surge = [s(1, 4, 4), s(2, 6, 4)];
        let v = fences(&changes, &surge, &[], 1, 1);
        assert_eq!(v.len(), 1, "{v:?}");
        assert!(v[0].contains("6 chaos-web pods live"), "{v:?}");
        // Two Ready pods of four (maxUnavailable 1).
        let low = [s(1, 4, 4), s(2, 4, 2)];
        let v = fences(&changes, &low, &[], 1, 1);
        assert!(
            v[0].contains("fewer than replicas-maxUnavailable (4-1)"),
            "{v:?}"
        );
        // The same drop while a node fault is active is excused.
        let excused = [(1_500_000_000, 2_500_000_000)];
        assert!(fences(&changes, &low, &excused, 1, 1).is_empty());
        // Scaled down from 6 to 2 at 20 s: Ready may fall to 1.
        let changes = [change(6, 0, Some(0)), change(2, 20, Some(20))];
        let down = [s(19, 6, 6), s(21, 2, 2), s(22, 2, 1)];
        assert!(fences(&changes, &down, &[], 1, 1).is_empty());
        // Before the scale down, dropping to 2 Ready breaks the fence.
        let v = fences(&changes, &[s(10, 6, 6), s(11, 6, 2)], &[], 1, 1);
        assert!(v[0].contains("(6-1)"), "{v:?}");
        // A scale down whose outcome is unknown keeps the old count in effect too.
        let changes = [change(6, 0, Some(0)), change(2, 20, None)];
        assert!(fences(&changes, &[s(21, 7, 6), s(30, 7, 6)], &[], 1, 1).is_empty());
        // Scaled up to 6: 7 live pods at most.
        let changes = [change(2, 0, Some(0)), change(6, 20, Some(20))];
        assert!(fences(&changes, &[s(30, 2, 2), s(31, 7, 2)], &[], 1, 1).is_empty());
        let v = fences(&changes, &[s(30, 2, 2), s(31, 8, 2)], &[], 1, 1);
        assert!(v[0].contains("(6+1)"), "{v:?}");
        // The old count stays in effect for the controllers' lag after a change.
        let changes = [change(6, 0, Some(0)), change(2, 20, Some(20))];
        let v = fences(
            &changes,
            &[s(22, 3, 2), s(22, 3, 2), s(30, 4, 2)],
            &[],
            1,
            1,
        );
        assert!(
            v.is_empty(),
            "within the lag, 6 may still be acted on: {v:?}"
        );
        let v = fences(&changes, &[s(29, 3, 2), s(30, 4, 2)], &[], 1, 1);
        assert!(v[0].contains("(2+1)"), "{v:?}");
    }
}
