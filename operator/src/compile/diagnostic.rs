//! Diagnostics: every problem `compile` finds, as data a reconciler turns into status
//! conditions and events. Each names the object at fault, a CamelCase reason a program can
//! match on, and a message a person can act on.

use std::fmt;

use serde::{Deserialize, Serialize};

/// The object a diagnostic is about.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[serde(rename_all = "camelCase")]
pub struct ObjectRef {
    /// Kind: `MonitorZone`, `CheckTemplate`, `RuleSet`, `BusinessProcess` or `Node`.
    pub kind: String,
    /// Namespace; empty for cluster-scoped objects (zones, nodes).
    pub namespace: String,
    /// Name.
    pub name: String,
}

impl ObjectRef {
    /// A reference to an object of `kind`.
    pub fn new(kind: &str, namespace: &str, name: &str) -> Self {
        Self {
            kind: kind.to_owned(),
            namespace: namespace.to_owned(),
            name: name.to_owned(),
        }
    }

    /// A MonitorZone (cluster-scoped).
    pub fn zone(name: &str) -> Self {
        Self::new(KIND_ZONE, "", name)
    }

    /// A CheckTemplate.
    pub fn template(namespace: &str, name: &str) -> Self {
        Self::new(KIND_TEMPLATE, namespace, name)
    }

    /// A RuleSet.
    pub fn rule_set(namespace: &str, name: &str) -> Self {
        Self::new(KIND_RULE_SET, namespace, name)
    }

    /// A BusinessProcess.
    pub fn process(namespace: &str, name: &str) -> Self {
        Self::new(KIND_PROCESS, namespace, name)
    }

    /// A machine (Kubernetes node or registered host).
    pub fn node(name: &str) -> Self {
        Self::new(KIND_NODE, "", name)
    }
}

impl fmt::Display for ObjectRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.namespace.is_empty() {
            write!(f, "{} {}", self.kind, self.name)
        } else {
            write!(f, "{} {}/{}", self.kind, self.namespace, self.name)
        }
    }
}

/// Kind name of zones.
pub const KIND_ZONE: &str = "MonitorZone";
/// Kind name of templates.
pub const KIND_TEMPLATE: &str = "CheckTemplate";
/// Kind name of rule sets.
pub const KIND_RULE_SET: &str = "RuleSet";
/// Kind name of business processes.
pub const KIND_PROCESS: &str = "BusinessProcess";
/// Kind name of machines.
pub const KIND_NODE: &str = "Node";

/// How bad a problem is.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Severity {
    /// The object's part at fault is not used (its checks are not emitted).
    Error,
    /// Everything compiles, but probably not as meant.
    Warning,
}

/// Why: a CamelCase word a program (and a status condition) can match on.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Reason {
    /// A rule or remote check names a template that does not exist.
    UnknownTemplate,
    /// A rule or remote check names a template that has errors of its own.
    InvalidTemplate,
    /// A value does not have its parameter's type, range or allowed values.
    InvalidParameter,
    /// A required parameter has no value.
    MissingParameter,
    /// A value is given for a parameter the template does not declare.
    UnknownParameter,
    /// A template uses `$name$` without declaring the parameter.
    UndeclaredParameter,
    /// A template parameter is declared twice, or is both required and defaulted.
    InvalidParameterSpec,
    /// A threshold is not a Nagios range after substitution.
    InvalidThreshold,
    /// Intervals and timeout do not fit together.
    InvalidTiming,
    /// A check names no probe or several.
    InvalidProbe,
    /// A check the agents would refuse (their own definition of a runnable check says why).
    Unrunnable,
    /// A check too large for a bundle shard (a huge parameter value); it is left out.
    TooLarge,
    /// A change would break objects that depend on it (rule sets on a zone, processes on a
    /// rule set) and compiled with its last good spec.
    BreaksDependents,
    /// A label selector cannot be evaluated.
    InvalidSelector,
    /// A selector selects no machine.
    SelectorMatchesNothing,
    /// Selected machines belong to no zone, so they run nothing.
    MachinesWithoutZone,
    /// A zone name refers to no MonitorZone.
    UnknownZone,
    /// Zones' parents form a cycle.
    ZoneCycle,
    /// A zone has one satellite replica: while its pod restarts or moves, the zone's agents
    /// only spool (a warning).
    SingleSatellite,
    /// Several zones select the same machines.
    OverlappingZones,
    /// A remote check needs exactly one of template or check, and a namespaced template.
    InvalidRemoteCheck,
    /// Two objects, rules, remote checks or elements share a name.
    Duplicate,
    /// A process's dependencies form a cycle.
    DependencyCycle,
    /// A process refers to an element it does not have.
    UnknownElement,
    /// A process condition names a rule set that does not exist.
    UnknownRuleSet,
    /// A process condition names a rule its rule set does not have.
    UnknownRule,
    /// A process clause cannot be evaluated as written (it mixes a machine's facts with
    /// facts from elsewhere, uses a condition this release does not evaluate, names an
    /// unknown time zone, or has a deadline that cannot apply).
    InvalidClause,
    /// A `notify` or a route names a receiver no NotificationConfig of the namespace defines.
    UnknownReceiver,
    /// A receiver is not exactly one of alertmanager, webhook or email, or its settings do
    /// not go together.
    InvalidReceiver,
    /// A route's matcher cannot be evaluated (its regular expression does not compile).
    InvalidMatcher,
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

/// One problem found while compiling.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[serde(rename_all = "camelCase")]
pub struct Diagnostic {
    /// The object at fault.
    pub object: ObjectRef,
    /// How bad it is.
    pub severity: Severity,
    /// Why, as a word.
    pub reason: Reason,
    /// What is wrong, naming the rule, parameter or field.
    pub message: String,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: {:?} {}: {}",
            self.object, self.severity, self.reason, self.message
        )
    }
}

/// Collects diagnostics about one object at a time.
#[derive(Debug, Default)]
pub struct Diagnostics {
    items: Vec<Diagnostic>,
}

impl Diagnostics {
    /// Records an error.
    pub fn error(&mut self, object: &ObjectRef, reason: Reason, message: impl Into<String>) {
        self.push(object, Severity::Error, reason, message.into());
    }

    /// Records a warning.
    pub fn warning(&mut self, object: &ObjectRef, reason: Reason, message: impl Into<String>) {
        self.push(object, Severity::Warning, reason, message.into());
    }

    fn push(&mut self, object: &ObjectRef, severity: Severity, reason: Reason, message: String) {
        self.items.push(Diagnostic {
            object: object.clone(),
            severity,
            reason,
            message,
        });
    }

    /// How many errors were recorded so far.
    pub fn error_count(&self) -> usize {
        self.items
            .iter()
            .filter(|d| d.severity == Severity::Error)
            .count()
    }

    /// Every diagnostic, sorted and without repeats.
    pub fn into_sorted(mut self) -> Vec<Diagnostic> {
        self.items.sort();
        self.items.dedup();
        self.items
    }
}
