use super::*;

fn change(host: &str, state: CheckState) -> HardChange {
    HardChange {
        host: host.into(),
        check: CheckId {
            namespace: "shop".into(),
            rule_set: "web".into(),
            rule: "tcp".into(),
        },
        state,
        previous: CheckState::Ok,
        output: "connection refused".into(),
        at_ms: 1,
    }
}

#[test]
fn one_event_per_check_per_interval_with_the_latest_state() {
    let start = Instant::now();
    let mut limiter = Limiter::new(Duration::from_secs(60), 10, start);
    limiter.offer(change("n1", CheckState::Critical));
    assert_eq!(limiter.due(start).len(), 1);
    // Flapping within the minute: only the latest state is sent, when the minute is over.
    limiter.offer(change("n1", CheckState::Ok));
    limiter.offer(change("n1", CheckState::Warning));
    assert!(limiter.due(start + Duration::from_secs(30)).is_empty());
    let later = limiter.due(start + Duration::from_secs(60));
    assert_eq!(
        later.iter().map(|c| c.state).collect::<Vec<_>>(),
        [CheckState::Warning]
    );
    // Back to the state last sent: nothing new to say.
    limiter.offer(change("n1", CheckState::Warning));
    assert!(limiter.due(start + Duration::from_secs(200)).is_empty());
}

#[test]
fn at_most_the_overall_rate() {
    let start = Instant::now();
    let mut limiter = Limiter::new(Duration::from_secs(60), 10, start);
    for i in 0..25 {
        limiter.offer(change(&format!("n{i}"), CheckState::Critical));
    }
    assert_eq!(limiter.due(start).len(), 10);
    assert_eq!(limiter.due(start + Duration::from_millis(500)).len(), 5);
    assert_eq!(limiter.due(start + Duration::from_secs(2)).len(), 10);
}

#[test]
fn reasons_and_notes_name_host_check_and_output() {
    let critical = change("n1", CheckState::Critical);
    assert_eq!(reason(&critical).0, "CheckCritical");
    assert_eq!(reason(&change("n1", CheckState::Ok)).0, "CheckRecovered");
    assert_eq!(note(&critical), "tcp on n1: CRITICAL: connection refused");
}

#[test]
fn notes_are_sanitized_and_bounded_in_bytes() {
    let mut hostile = change("n1", CheckState::Critical);
    hostile.output = format!("\u{1b}[31mred\u{1b}[0m\0\r{}", "✓".repeat(2_000));
    let text = note(&hostile);
    assert!(text.starts_with("tcp on n1: CRITICAL: red✓"), "{text:?}");
    assert!(text.len() <= MAX_NOTE_BYTES, "{} bytes", text.len());
    assert!(text.ends_with(vedette_protocol::text::TRUNCATED));
    assert!(!text.chars().any(|c| c.is_control()));
}
