//! The training log `metrics.jsonl`: step lines (`loss`, `tokens_per_s`) and eval lines (`HR@10`, ...).

use serde_json::Value;

/// One evaluation line.
#[derive(Clone, Debug, PartialEq)]
pub struct EvalPoint {
    /// The step (or, when absent, the epoch) the evaluation was taken at.
    pub x: f64,
    pub epoch: Option<f64>,
    /// The line's `split` (`valid`, `test`, `valid_in_sample`), where present.
    pub split: Option<String>,
    /// `(metric name, value)` for every `HR@K`, `NDCG@K`, `MRR` field of the line.
    pub metrics: Vec<(String, f64)>,
}

/// Parsed `metrics.jsonl`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct TrainingLog {
    /// `[step, loss]` of every training line.
    pub loss: Vec<[f64; 2]>,
    /// `[step, tokens/s]` where present.
    pub tokens_per_s: Vec<[f64; 2]>,
    pub evals: Vec<EvalPoint>,
    /// Lines that were not JSON objects (reported, not fatal: the log may be written while read).
    pub skipped_lines: usize,
}

fn is_metric(name: &str) -> bool {
    name.starts_with("HR@") || name.starts_with("NDCG@") || name == "MRR" || name.starts_with("AUC")
}

impl TrainingLog {
    /// Parse the text of a `metrics.jsonl`; a line that does not parse is counted and skipped.
    pub fn parse(text: &str) -> TrainingLog {
        let mut log = TrainingLog::default();
        for line in text.lines().filter(|l| !l.trim().is_empty()) {
            let Ok(Value::Object(obj)) = serde_json::from_str::<Value>(line) else {
                log.skipped_lines += 1;
                continue;
            };
            let num = |k: &str| obj.get(k).and_then(Value::as_f64);
            let epoch = num("epoch");
            let Some(x) = num("step").or(epoch) else {
                log.skipped_lines += 1;
                continue;
            };
            if let Some(loss) = num("loss") {
                log.loss.push([x, loss]);
            }
            if let Some(tps) = num("tokens_per_s") {
                log.tokens_per_s.push([x, tps]);
            }
            let mut metrics: Vec<(String, f64)> = obj
                .iter()
                .filter(|(k, _)| is_metric(k))
                .filter_map(|(k, v)| v.as_f64().map(|v| (k.clone(), v)))
                .collect();
            if !metrics.is_empty() {
                metrics.sort_by(|a, b| a.0.cmp(&b.0));
                let split = obj.get("split").and_then(Value::as_str).map(str::to_owned);
                log.evals.push(EvalPoint {
                    x,
                    epoch,
                    split,
                    metrics,
                });
            }
        }
        log
    }

    /// Names of every eval metric seen, sorted.
    pub fn metric_names(&self) -> Vec<String> {
        let mut names: Vec<String> = self
            .evals
            .iter()
            .flat_map(|e| e.metrics.iter().map(|m| m.0.clone()))
            .collect();
        names.sort();
        names.dedup();
        names
    }

    /// The distinct `split` labels of the eval lines, in the order first seen.
    pub fn splits(&self) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for s in self.evals.iter().filter_map(|e| e.split.as_ref()) {
            if !out.contains(s) {
                out.push(s.clone());
            }
        }
        out
    }

    /// `[x, value]` series of one eval metric.
    pub fn metric_series(&self, name: &str) -> Vec<[f64; 2]> {
        self.evals
            .iter()
            .filter_map(|e| e.metrics.iter().find(|m| m.0 == name).map(|m| [e.x, m.1]))
            .collect()
    }

    /// The eval point with the highest value of `name`.
    pub fn best(&self, name: &str) -> Option<[f64; 2]> {
        self.metric_series(name)
            .into_iter()
            .max_by(|a, b| a[1].total_cmp(&b[1]))
    }

    pub fn is_empty(&self) -> bool {
        self.loss.is_empty() && self.evals.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_steps_evals_and_skips_garbage() {
        let text = r#"{"step": 1, "epoch": 0, "loss": 5.5, "tokens_per_s": 1000.0}
{"step": 2, "epoch": 0, "loss": 5.0}
not json
{"epoch": 1, "HR@10": 0.1, "NDCG@10": 0.05, "split": "valid_in_sample"}
{"step": 9, "HR@10": 0.2, "NDCG@10": 0.1, "MRR": 0.07}
"#;
        let log = TrainingLog::parse(text);
        assert_eq!(log.loss, vec![[1.0, 5.5], [2.0, 5.0]]);
        assert_eq!(log.tokens_per_s, vec![[1.0, 1000.0]]);
        assert_eq!(log.skipped_lines, 1);
        assert_eq!(log.metric_names(), vec!["HR@10", "MRR", "NDCG@10"]);
        assert_eq!(log.metric_series("HR@10"), vec![[1.0, 0.1], [9.0, 0.2]]);
        assert_eq!(log.best("NDCG@10"), Some([9.0, 0.1]));
        assert_eq!(log.splits(), vec!["valid_in_sample"]);
        assert_eq!(log.evals[1].split, None);
    }
}
