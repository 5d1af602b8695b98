//! The line preprocessor that composes variants: `//#if FLAG`, `//#if !FLAG`, `//#else`, `//#endif`.
//! Lines left out become empty lines so that naga's line numbers stay those of the file (plus the prelude).

/// Keep the lines of `source` selected by `flags`.
pub fn preprocess(source: &str, flags: &[&str]) -> Result<String, String> {
    // Stack of (this branch active, parent active).
    let mut stack: Vec<(bool, bool)> = Vec::new();
    let mut out = String::with_capacity(source.len());
    for (n, line) in source.lines().enumerate() {
        let trimmed = line.trim_start();
        let active = stack.last().is_none_or(|&(a, _)| a);
        if let Some(cond) = trimmed.strip_prefix("//#if ") {
            let cond = cond.trim();
            let (negate, flag) = match cond.strip_prefix('!') {
                Some(f) => (true, f.trim()),
                None => (false, cond),
            };
            if flag.is_empty() || !flag.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                return Err(format!("line {}: bad condition `{cond}`", n + 1));
            }
            let value = flags.contains(&flag) != negate;
            stack.push((active && value, active));
            out.push('\n');
        } else if trimmed.starts_with("//#else") {
            let Some(top) = stack.last_mut() else {
                return Err(format!("line {}: #else without #if", n + 1));
            };
            top.0 = top.1 && !top.0;
            out.push('\n');
        } else if trimmed.starts_with("//#endif") {
            if stack.pop().is_none() {
                return Err(format!("line {}: #endif without #if", n + 1));
            }
            out.push('\n');
        } else {
            if active {
                out.push_str(line);
            }
            out.push('\n');
        }
    }
    if !stack.is_empty() {
        return Err("unterminated #if".into());
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn branches_and_nesting() {
        let src = "a\n//#if X\nb\n//#if !Y\nc\n//#else\nd\n//#endif\n//#else\ne\n//#endif\nf\n";
        let keep = |flags: &[&str]| -> Vec<String> {
            preprocess(src, flags)
                .unwrap()
                .lines()
                .filter(|l| !l.is_empty())
                .map(String::from)
                .collect()
        };
        assert_eq!(keep(&[]), ["a", "e", "f"]);
        assert_eq!(keep(&["X"]), ["a", "b", "c", "f"]);
        assert_eq!(keep(&["X", "Y"]), ["a", "b", "d", "f"]);
        assert_eq!(
            preprocess(src, &[]).unwrap().lines().count(),
            src.lines().count()
        );
    }

    #[test]
    fn unbalanced_is_an_error() {
        assert!(preprocess("//#if X\n", &[]).is_err());
        assert!(preprocess("//#endif\n", &[]).is_err());
        assert!(preprocess("//#else\n", &[]).is_err());
        assert!(preprocess("//#if a-b\n//#endif\n", &[]).is_err());
    }
}
