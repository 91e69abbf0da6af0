//! Kubernetes label selectors, evaluated against a machine's labels: `matchLabels` and
//! `matchExpressions` with `In`, `NotIn`, `Exists` and `DoesNotExist`; `{}` matches everything.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;

/// Why a selector cannot be evaluated.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SelectorError {
    /// The operator is none of the four.
    #[error(
        "matchExpressions key {key}: unknown operator {operator:?} (use In, NotIn, Exists or DoesNotExist)"
    )]
    UnknownOperator {
        /// The label key.
        key: String,
        /// The operator given.
        operator: String,
    },
    /// `In`/`NotIn` without values, or `Exists`/`DoesNotExist` with some.
    #[error("matchExpressions key {key}: operator {operator} {problem}")]
    Values {
        /// The label key.
        key: String,
        /// The operator given.
        operator: String,
        /// What is wrong with the values.
        problem: &'static str,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Requirement {
    Equals(String, String),
    In(String, Vec<String>),
    NotIn(String, Vec<String>),
    Exists(String),
    DoesNotExist(String),
}

impl Requirement {
    fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        match self {
            Requirement::Equals(key, value) => labels.get(key) == Some(value),
            Requirement::In(key, values) => labels.get(key).is_some_and(|v| values.contains(v)),
            Requirement::NotIn(key, values) => labels.get(key).is_none_or(|v| !values.contains(v)),
            Requirement::Exists(key) => labels.contains_key(key),
            Requirement::DoesNotExist(key) => !labels.contains_key(key),
        }
    }
}

/// A label selector ready to be matched.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Selector {
    requirements: Vec<Requirement>,
}

impl Selector {
    /// Checks and prepares a selector.
    pub fn new(selector: &LabelSelector) -> Result<Self, SelectorError> {
        let mut requirements: Vec<Requirement> = selector
            .match_labels
            .iter()
            .flatten()
            .map(|(k, v)| Requirement::Equals(k.clone(), v.clone()))
            .collect();
        for expression in selector.match_expressions.iter().flatten() {
            let key = expression.key.clone();
            let values = expression.values.clone().unwrap_or_default();
            let problem = |problem| SelectorError::Values {
                key: key.clone(),
                operator: expression.operator.clone(),
                problem,
            };
            let requirement = match expression.operator.as_str() {
                "In" | "NotIn" if values.is_empty() => return Err(problem("needs values")),
                "Exists" | "DoesNotExist" if !values.is_empty() => {
                    return Err(problem("takes no values"));
                }
                "In" => Requirement::In(key, values),
                "NotIn" => Requirement::NotIn(key, values),
                "Exists" => Requirement::Exists(key),
                "DoesNotExist" => Requirement::DoesNotExist(key),
                other => {
                    return Err(SelectorError::UnknownOperator {
                        key,
                        operator: other.to_owned(),
                    });
                }
            };
            requirements.push(requirement);
        }
        Ok(Self { requirements })
    }

    /// Whether labels satisfy every requirement.
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        self.requirements.iter().all(|r| r.matches(labels))
    }

    /// How many terms the selector has: the more, the more specific.
    pub fn specificity(&self) -> usize {
        self.requirements.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelectorRequirement;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    fn expression(key: &str, operator: &str, values: &[&str]) -> LabelSelectorRequirement {
        LabelSelectorRequirement {
            key: key.to_owned(),
            operator: operator.to_owned(),
            values: (!values.is_empty()).then(|| values.iter().map(|v| (*v).to_owned()).collect()),
        }
    }

    fn selector(
        match_labels: &[(&str, &str)],
        expressions: Vec<LabelSelectorRequirement>,
    ) -> Selector {
        Selector::new(&LabelSelector {
            match_labels: (!match_labels.is_empty()).then(|| labels(match_labels)),
            match_expressions: (!expressions.is_empty()).then_some(expressions),
        })
        .expect("valid selector")
    }

    #[test]
    fn an_empty_selector_matches_everything() {
        let all = selector(&[], vec![]);
        assert!(all.matches(&labels(&[])));
        assert!(all.matches(&labels(&[("a", "b")])));
        assert_eq!(all.specificity(), 0);
    }

    #[test]
    fn match_labels_need_every_pair() {
        let s = selector(&[("os", "linux"), ("tier", "web")], vec![]);
        assert!(s.matches(&labels(&[("os", "linux"), ("tier", "web"), ("x", "y")])));
        assert!(!s.matches(&labels(&[("os", "linux")])));
        assert!(!s.matches(&labels(&[("os", "linux"), ("tier", "db")])));
    }

    #[test]
    fn each_operator_means_what_kubernetes_says() {
        let web = labels(&[("tier", "web")]);
        let db = labels(&[("tier", "db")]);
        let none = labels(&[]);
        let is_in = selector(&[], vec![expression("tier", "In", &["web", "edge"])]);
        assert!(is_in.matches(&web) && !is_in.matches(&db) && !is_in.matches(&none));
        let not_in = selector(&[], vec![expression("tier", "NotIn", &["web"])]);
        assert!(!not_in.matches(&web) && not_in.matches(&db) && not_in.matches(&none));
        let exists = selector(&[], vec![expression("tier", "Exists", &[])]);
        assert!(exists.matches(&web) && !exists.matches(&none));
        let absent = selector(&[], vec![expression("tier", "DoesNotExist", &[])]);
        assert!(!absent.matches(&web) && absent.matches(&none));
    }

    #[test]
    fn labels_and_expressions_combine_with_and() {
        let s = selector(
            &[("app", "shop")],
            vec![expression("node-role.kubernetes.io/web", "Exists", &[])],
        );
        assert_eq!(s.specificity(), 2);
        assert!(s.matches(&labels(&[
            ("app", "shop"),
            ("node-role.kubernetes.io/web", "")
        ])));
        assert!(!s.matches(&labels(&[("app", "shop")])));
    }

    #[test]
    fn bad_expressions_are_errors_with_a_message() {
        let error = Selector::new(&LabelSelector {
            match_labels: None,
            match_expressions: Some(vec![expression("tier", "Gt", &["1"])]),
        })
        .unwrap_err();
        assert_eq!(
            error.to_string(),
            "matchExpressions key tier: unknown operator \"Gt\" (use In, NotIn, Exists or DoesNotExist)"
        );
        let error = Selector::new(&LabelSelector {
            match_labels: None,
            match_expressions: Some(vec![expression("tier", "In", &[])]),
        })
        .unwrap_err();
        assert_eq!(
            error.to_string(),
            "matchExpressions key tier: operator In needs values"
        );
    }
}
