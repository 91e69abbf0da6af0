//! The one home of what a [`HistoryQuery`] selects, as SQL both stores run: a `WHERE` clause
//! with `?` placeholders and its parameters, in order, over `records r JOIN series s` (see
//! [`crate::series`]; [`RECORDS_FROM`]). (PostgreSQL numbers the placeholders; [`numbered`]
//! does that.)

use crate::query::HistoryQuery;

/// A parameter of the clause.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Param {
    /// A text value.
    Text(String),
    /// An integer value.
    Int(i64),
}

/// The `WHERE` clause (empty when everything matches) and its parameters.
pub fn history_filter(query: &HistoryQuery) -> (String, Vec<Param>) {
    let mut clauses: Vec<String> = Vec::new();
    let mut params: Vec<Param> = Vec::new();
    // A query that names series fields reads the series first, then each one's records by
    // `records_series`; its namespace is then a series field too, or SQLite would rather walk
    // `records_namespace` in time order and test every record of the application.
    let by_series = query.host.is_some() || query.rule_set.is_some() || query.check.is_some();
    let namespace = if by_series {
        "s.namespace"
    } else {
        "r.namespace"
    };
    let text_fields = [
        (namespace, &query.namespace),
        ("r.zone", &query.zone),
        ("s.host", &query.host),
        ("s.rule_set", &query.rule_set),
        ("s.check_name", &query.check),
    ];
    for (column, value) in text_fields {
        if let Some(value) = value {
            clauses.push(format!("{column} = ?"));
            params.push(Param::Text(value.clone()));
        }
    }
    if let Some(allowed) = &query.allowed_namespaces {
        let marks = vec!["?"; allowed.len()].join(", ");
        clauses.push(format!("{namespace} IN ({marks})"));
        params.extend(allowed.iter().cloned().map(Param::Text));
    }
    if let Some(state) = query.state {
        clauses.push("r.state = ?".into());
        params.push(Param::Int(i64::from(state.exit_code())));
    }
    if let Some(kind) = query.kind {
        clauses.push("r.kind = ?".into());
        params.push(Param::Text(kind.name().to_owned()));
    }
    if let Some(from) = query.from_ms {
        clauses.push("r.at_ms >= ?".into());
        params.push(Param::Int(from as i64));
    }
    if let Some(to) = query.to_ms {
        clauses.push("r.at_ms < ?".into());
        params.push(Param::Int(to as i64));
    }
    if let Some(after) = query.after {
        clauses.push("(r.at_ms, r.sequence, r.id) < (?, ?, ?)".into());
        params.push(Param::Int(after.at_ms as i64));
        params.push(Param::Int(after.sequence as i64));
        params.push(Param::Int(after.id));
    }
    let clause = if clauses.is_empty() {
        String::new()
    } else {
        format!("WHERE {}", clauses.join(" AND "))
    };
    (clause, params)
}

/// The columns of a stored record, in the order both stores read them.
pub const RECORD_COLUMNS: &str = "r.id, r.kind, r.at_ms, r.source, r.sequence, r.namespace, \
     r.zone, s.host, s.rule_set, s.check_name, r.state, r.previous, r.hard, r.message, r.detail";

/// What [`history_filter`]'s clause selects from.
pub const RECORDS_FROM: &str = "records r JOIN series s ON s.id = r.series";

/// The page order: newest first, then the source's order, then the store's.
pub const NEWEST_FIRST: &str = "ORDER BY r.at_ms DESC, r.sequence DESC, r.id DESC";

/// The checks of a rule set that have a last state: `(namespace, rule_set)` → `(host, check)`.
pub const LAST_STATE_CHECKS: &str =
    "SELECT host, check_name FROM last_states WHERE namespace = ? AND rule_set = ?";

/// The checks of a rule set with a record in a range: `(namespace, rule_set, from, to)` →
/// `(host, check)`. Read from the series and the `records_series` index alone (no `kind`: a
/// check with records but no state change shows as pending).
pub const RANGE_CHECKS: &str = "SELECT s.host, s.check_name FROM series s \
     WHERE s.namespace = ? AND s.rule_set = ? AND s.check_name <> '' AND EXISTS \
     (SELECT 1 FROM records r WHERE r.series = s.id AND r.at_ms >= ? AND r.at_ms < ?)";

/// A check's state before a time: `(namespace, rule_set, check, host, before)` → `state`; and
/// its changes in a range, in the order they happened: `(…, from, to)` → `(at_ms, state)`.
/// With `hard_only`, only hard states count.
pub fn availability_sql(hard_only: bool) -> (String, String) {
    let hard = if hard_only { " AND hard = 1" } else { "" };
    let check = "series = (SELECT id FROM series WHERE namespace = ? AND rule_set = ? \
                 AND check_name = ? AND host = ?) AND kind = 'state_change'";
    (
        format!(
            "SELECT state FROM records WHERE {check} AND at_ms < ?{hard} \
             ORDER BY at_ms DESC, sequence DESC LIMIT 1"
        ),
        format!(
            "SELECT at_ms, state FROM records WHERE {check} AND at_ms >= ? AND at_ms < ?{hard} \
             ORDER BY at_ms, sequence"
        ),
    )
}

/// `sql` with its `?` placeholders numbered `$1`, `$2`, … (PostgreSQL's style).
pub fn numbered(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len() + 8);
    let mut next = 0;
    for c in sql.chars() {
        if c == '?' {
            next += 1;
            out.push_str(&format!("${next}"));
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_set_field_is_a_clause_with_its_parameter_in_order() {
        let (clause, params) = history_filter(&HistoryQuery {
            namespace: Some("shop".into()),
            allowed_namespaces: Some(vec!["shop".into(), "web".into()]),
            from_ms: Some(5),
            ..HistoryQuery::default()
        });
        assert_eq!(
            clause,
            "WHERE r.namespace = ? AND r.namespace IN (?, ?) AND r.at_ms >= ?"
        );
        assert_eq!(
            params,
            [
                Param::Text("shop".into()),
                Param::Text("shop".into()),
                Param::Text("web".into()),
                Param::Int(5)
            ]
        );
        assert_eq!(history_filter(&HistoryQuery::default()).0, "");
        let (clause, _) = history_filter(&HistoryQuery {
            namespace: Some("shop".into()),
            allowed_namespaces: Some(vec!["shop".into()]),
            check: Some("tcp".into()),
            ..HistoryQuery::default()
        });
        assert_eq!(
            clause, "WHERE s.namespace = ? AND s.check_name = ? AND s.namespace IN (?)",
            "a query naming series fields reads the namespace from the series"
        );
        assert_eq!(
            numbered("a = ? AND b IN (?, ?)"),
            "a = $1 AND b IN ($2, $3)"
        );
    }
}
