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

/// Sort key of a metric name: family, then the numeric cut-off after `@` (0 without one), then
/// the name itself.
fn metric_order(name: &str) -> (String, u64, String) {
    let (family, cut) = name.split_once('@').unwrap_or((name, ""));
    let k = cut
        .chars()
        .take_while(char::is_ascii_digit)
        .collect::<String>()
        .parse()
        .unwrap_or(0);
    (family.to_owned(), k, name.to_owned())
}

/// How each metric of `names` is drawn: `(colour index, line style index)`. Metrics with the same
/// cut-off share a colour (`HR@10` and `NDCG@10`), families with cut-offs take line styles in
/// order (`HR` solid, `NDCG` dashed, ...); a name without `@` (`MRR`) has a colour of its own.
pub fn series_styles(names: &[String]) -> Vec<(usize, usize)> {
    let mut cuts: Vec<&str> = Vec::new();
    let mut families: Vec<&str> = Vec::new();
    names
        .iter()
        .map(|name| {
            let (family, cut) = match name.split_once('@') {
                Some((f, c)) => (Some(f), c),
                None => (None, name.as_str()),
            };
            let color = cuts.iter().position(|c| *c == cut).unwrap_or_else(|| {
                cuts.push(cut);
                cuts.len() - 1
            });
            let style = family.map_or(0, |f| {
                families.iter().position(|x| *x == f).unwrap_or_else(|| {
                    families.push(f);
                    families.len() - 1
                })
            });
            (color, style)
        })
        .collect()
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

    /// Names of every eval metric seen, by family then cut-off: `HR@10, HR@50, HR@200, MRR,
    /// NDCG@10, ...` (not `HR@200` before `HR@50`, as a plain string sort has it).
    pub fn metric_names(&self) -> Vec<String> {
        let mut names: Vec<String> = self
            .evals
            .iter()
            .flat_map(|e| e.metrics.iter().map(|m| m.0.clone()))
            .collect();
        names.sort_by_key(|n| metric_order(n));
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

    #[test]
    fn same_cut_off_same_colour_family_picks_the_style() {
        let names: Vec<String> = ["HR@10", "HR@50", "MRR", "NDCG@10", "NDCG@50"]
            .map(String::from)
            .into();
        assert_eq!(
            series_styles(&names),
            vec![(0, 0), (1, 0), (2, 0), (0, 1), (1, 1)]
        );
    }

    #[test]
    fn metrics_order_by_family_then_cut_off() {
        let text = r#"{"step": 1, "HR@200": 0.9, "HR@50": 0.5, "HR@10": 0.2, "NDCG@200": 0.3, "NDCG@10": 0.1, "MRR": 0.1, "AUC@task1": 0.7, "AUC@task0": 0.8}"#;
        let log = TrainingLog::parse(text);
        assert_eq!(
            log.metric_names(),
            vec![
                "AUC@task0",
                "AUC@task1",
                "HR@10",
                "HR@50",
                "HR@200",
                "MRR",
                "NDCG@10",
                "NDCG@200"
            ]
        );
    }
}
