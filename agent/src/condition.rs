//! CEL conditions over a probe's output, evaluated on the agent (F8). A condition sees
//! `value` (the measured number), `output` (the text line), `perfdata` (label → number) and
//! `state` (what the thresholds said: `"OK"`, `"WARNING"`, …); it must return a boolean.

use std::collections::HashMap;

use cel::{Context, Program, Value};

/// A compiled condition.
#[derive(Debug)]
pub struct Condition {
    source: String,
    program: Program,
}

/// Why a condition could not be compiled or evaluated.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// The expression does not parse.
    #[error("condition {expression:?} does not parse: {reason}")]
    Parse {
        /// The expression.
        expression: String,
        /// The parser's message.
        reason: String,
    },
    /// Evaluation failed (unknown variable, wrong types…).
    #[error("condition {expression:?} failed: {reason}")]
    Evaluate {
        /// The expression.
        expression: String,
        /// Why.
        reason: String,
    },
    /// The expression returned something other than a boolean.
    #[error("condition {expression:?} returned {found}, not a boolean")]
    NotBoolean {
        /// The expression.
        expression: String,
        /// What it returned.
        found: String,
    },
}

/// What a condition can see.
#[derive(Debug, Clone, Copy)]
pub struct Inputs<'a> {
    /// The measured value.
    pub value: f64,
    /// The output line.
    pub output: &'a str,
    /// Perfdata, label and value.
    pub perfdata: &'a [(String, f64)],
    /// The state the thresholds gave.
    pub state: &'a str,
}

impl Condition {
    /// Compiles `source`.
    pub fn compile(source: &str) -> Result<Self, Error> {
        let program = Program::compile(source).map_err(|e| Error::Parse {
            expression: source.to_owned(),
            reason: e.to_string(),
        })?;
        Ok(Self {
            source: source.to_owned(),
            program,
        })
    }

    /// The expression.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// Evaluates the condition.
    pub fn holds(&self, inputs: Inputs<'_>) -> Result<bool, Error> {
        let mut context = Context::default();
        let perfdata: HashMap<String, f64> = inputs.perfdata.iter().cloned().collect();
        context.add_variable_from_value("value", inputs.value);
        context.add_variable_from_value("output", inputs.output.to_owned());
        context.add_variable_from_value("state", inputs.state.to_owned());
        context.add_variable_from_value("perfdata", perfdata);
        match self.program.execute(&context) {
            Ok(Value::Bool(b)) => Ok(b),
            Ok(other) => Err(Error::NotBoolean {
                expression: self.source.clone(),
                found: format!("{other:?}"),
            }),
            Err(e) => Err(Error::Evaluate {
                expression: self.source.clone(),
                reason: e.to_string(),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inputs(value: f64) -> Inputs<'static> {
        static PERF: std::sync::LazyLock<Vec<(String, f64)>> = std::sync::LazyLock::new(|| {
            vec![("time".to_owned(), 0.25), ("size".to_owned(), 1024.0)]
        });
        Inputs {
            value,
            output: "HTTP 200 OK",
            perfdata: &PERF,
            state: "OK",
        }
    }

    #[test]
    fn conditions_see_value_output_perfdata_and_state() {
        assert!(
            Condition::compile("value > 10.0")
                .unwrap()
                .holds(inputs(11.0))
                .unwrap()
        );
        assert!(
            !Condition::compile("value > 10.0")
                .unwrap()
                .holds(inputs(9.0))
                .unwrap()
        );
        let c =
            Condition::compile("output.contains('200') && perfdata['time'] < 0.5 && state == 'OK'");
        assert!(c.unwrap().holds(inputs(1.0)).unwrap());
    }

    #[test]
    fn bad_conditions_name_the_problem() {
        let parse = Condition::compile("value >").unwrap_err();
        assert!(
            parse
                .to_string()
                .starts_with("condition \"value >\" does not parse"),
            "{parse}"
        );
        let not_bool = Condition::compile("value + 1.0")
            .unwrap()
            .holds(inputs(1.0))
            .unwrap_err();
        assert!(matches!(not_bool, Error::NotBoolean { .. }), "{not_bool}");
        let unknown = Condition::compile("nothing > 1")
            .unwrap()
            .holds(inputs(1.0))
            .unwrap_err();
        assert!(matches!(unknown, Error::Evaluate { .. }), "{unknown}");
    }
}
