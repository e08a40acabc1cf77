//! `sleep`: waits a number of seconds, checking for cancellation every tenth of a second, then
//! succeeds. Like Celery's `debug_task`: a run that does nothing but take time, to try out
//! workers, timeouts, cancelling, overlap policies and a deployment's plumbing.

use std::time::{Duration, Instant};

use serde_json::json;

use crate::jobs::{ParamKind, ParamSpec, TaskContext, TaskKind, integer_param};

#[derive(Debug, Clone, Copy)]
pub struct Sleep;

const PARAMS: &[ParamSpec] = &[ParamSpec {
    name: "seconds",
    label: "Seconds",
    help: "How long each run waits before it succeeds.",
    kind: ParamKind::Integer { min: 0, max: 86_400 },
    default: "10",
}];

impl TaskKind for Sleep {
    fn name(&self) -> &'static str {
        "sleep"
    }

    fn title(&self) -> &'static str {
        "Wait (for trying out workers)"
    }

    fn params(&self) -> &'static [ParamSpec] {
        PARAMS
    }

    fn run(&self, ctx: &TaskContext, params: &serde_json::Value) -> anyhow::Result<serde_json::Value> {
        let seconds = integer_param(self, params, "seconds").max(0);
        let until = Instant::now() + Duration::from_secs(seconds.unsigned_abs());
        ctx.log(format!("waiting {seconds} s"));
        loop {
            ctx.check_stop()?;
            let left = until.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            std::thread::sleep(left.min(Duration::from_millis(100)));
        }
        Ok(json!({ "slept_seconds": seconds }))
    }
}
