//! CheckTemplates: validated once on their own, then instantiated with a rule's (or a remote
//! check's) values: defaults merged, every value typed, `$name$` substituted everywhere.

use std::collections::{BTreeMap, BTreeSet};

use vedette_crds::check::PortOrParameter;
use vedette_crds::template::{CheckTemplateSpec, DEFAULT_INTERVAL_SECONDS, ParameterType};
use vedette_crds::{CheckSpec, ParameterValue};
use vedette_protocol::plan::parameter_names;
use vedette_protocol::range::Range;

use super::diagnostic::{Diagnostics, ObjectRef, Reason};
use super::params::{resolve, shown};
use super::substitute::{check_strings, is_threshold, substitute_check, substitute_text};

/// The parameter left for the satellite to fill in per machine or target.
const HOST: &str = "host";

/// A template known to compile, with the result of validating it.
#[derive(Debug, Clone, Copy)]
pub struct Template<'a> {
    /// Its namespace.
    pub namespace: &'a str,
    /// Its name.
    pub name: &'a str,
    /// Its spec.
    pub spec: &'a CheckTemplateSpec,
    /// Whether it passed validation (rules using an invalid template are skipped).
    pub valid: bool,
}

impl Template<'_> {
    /// `namespace/name`.
    pub fn key(&self) -> String {
        format!("{}/{}", self.namespace, self.name)
    }
}

/// One problem with an instantiation; the caller prefixes what was being instantiated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// Why.
    pub reason: Reason,
    /// What, without the rule's name.
    pub message: String,
}

impl Problem {
    fn new(reason: Reason, message: String) -> Self {
        Self { reason, message }
    }
}

/// A template with its parameters substituted.
#[derive(Debug, Clone, PartialEq)]
pub struct Instance {
    /// The probe.
    pub check: CheckSpec,
    /// Warning range.
    pub warning: Option<String>,
    /// Critical range.
    pub critical: Option<String>,
    /// CEL condition.
    pub condition: Option<String>,
}

/// Validates a template on its own; problems go to `diagnostics`. True when usable.
pub fn validate(
    namespace: &str,
    name: &str,
    spec: &CheckTemplateSpec,
    diagnostics: &mut Diagnostics,
) -> bool {
    let object = ObjectRef::template(namespace, name);
    let before = diagnostics.error_count();
    validate_parameters(spec, &object, diagnostics);
    if spec.check.probe_kind().is_none() {
        diagnostics.error(
            &object,
            Reason::InvalidProbe,
            "check needs exactly one probe",
        );
    }
    validate_references(spec, &object, diagnostics);
    validate_ports(spec, &object, diagnostics);
    validate_timing(spec, &object, diagnostics);
    diagnostics.error_count() == before
}

fn validate_parameters(
    spec: &CheckTemplateSpec,
    object: &ObjectRef,
    diagnostics: &mut Diagnostics,
) {
    let mut seen = BTreeSet::new();
    for parameter in &spec.parameters {
        let name = &parameter.name;
        if !seen.insert(name.as_str()) {
            let message = format!("parameter {name} is declared twice");
            diagnostics.error(object, Reason::InvalidParameterSpec, message);
        }
        if let (Some(min), Some(max)) = (parameter.minimum, parameter.maximum)
            && min > max
        {
            let message = format!("parameter {name}: minimum {min} exceeds maximum {max}");
            diagnostics.error(object, Reason::InvalidParameterSpec, message);
        }
        match (&parameter.default, parameter.required) {
            (Some(_), true) => diagnostics.warning(
                object,
                Reason::InvalidParameterSpec,
                format!("parameter {name}: required parameters cannot have a default"),
            ),
            (Some(default), false) => {
                if let Err(error) = resolve(parameter, default) {
                    let message = format!("parameter {name}: default: {error}");
                    diagnostics.error(object, Reason::InvalidParameter, message);
                }
            }
            (None, _) => {}
        }
    }
}

/// Every text field of a template that may hold `$name$`, with its path.
fn template_strings(spec: &CheckTemplateSpec) -> Vec<(String, String)> {
    let mut fields = check_strings(&spec.check);
    for (field, value) in [
        ("warning", &spec.warning),
        ("critical", &spec.critical),
        ("condition", &spec.condition),
    ] {
        if let Some(value) = value {
            fields.push((field.to_owned(), value.clone()));
        }
    }
    fields
}

fn validate_references(
    spec: &CheckTemplateSpec,
    object: &ObjectRef,
    diagnostics: &mut Diagnostics,
) {
    let declared: BTreeSet<&str> = spec.parameters.iter().map(|p| p.name.as_str()).collect();
    for (field, value) in template_strings(spec) {
        let undeclared: BTreeSet<&str> = parameter_names(&value)
            .filter(|name| *name != HOST && !declared.contains(name))
            .collect();
        for name in undeclared {
            let message = format!("{field} uses ${name}$, which is not a declared parameter");
            diagnostics.error(object, Reason::UndeclaredParameter, message);
        }
    }
}

fn validate_ports(spec: &CheckTemplateSpec, object: &ObjectRef, diagnostics: &mut Diagnostics) {
    let ports = [
        ("check.tcp.port", spec.check.tcp.as_ref().map(|p| &p.port)),
        ("check.tls.port", spec.check.tls.as_ref().map(|p| &p.port)),
        ("check.udp.port", spec.check.udp.as_ref().map(|p| &p.port)),
        ("check.snmp.port", spec.check.snmp.as_ref().map(|p| &p.port)),
        (
            "check.database.port",
            spec.check.database.as_ref().and_then(|p| p.port.as_ref()),
        ),
        (
            "check.mail.port",
            spec.check.mail.as_ref().and_then(|p| p.port.as_ref()),
        ),
    ];
    for (field, port) in ports {
        let Some(PortOrParameter::Parameter(text)) = port else {
            continue;
        };
        let name = text.strip_prefix('$').and_then(|t| t.strip_suffix('$'));
        let parameter = name.and_then(|n| spec.parameters.iter().find(|p| p.name == n));
        let message = match parameter {
            Some(p) if p.type_ == ParameterType::Int => continue,
            Some(p) => format!(
                "{field}: parameter {} must be of type int, not {}",
                p.name,
                type_name(p.type_)
            ),
            // Undeclared names are reported by `validate_references`.
            None if name.is_some_and(|n| parameter_names(text).eq([n])) => continue,
            None => format!("{field}: {text:?} is neither a port nor a parameter such as $port$"),
        };
        diagnostics.error(object, Reason::InvalidParameterSpec, message);
    }
}

fn type_name(type_: ParameterType) -> &'static str {
    match type_ {
        ParameterType::String => "string",
        ParameterType::Int => "int",
        ParameterType::Float => "float",
        ParameterType::Bool => "bool",
        ParameterType::Duration => "duration",
    }
}

/// The timeout against the intervals the template itself fixes; a check on cycles is
/// measured against each zone's cycle length when its bundle is assembled.
fn validate_timing(spec: &CheckTemplateSpec, object: &ObjectRef, diagnostics: &mut Diagnostics) {
    if spec.interval_seconds.is_some() && spec.every_cycles.is_some() {
        diagnostics.error(
            object,
            Reason::InvalidTiming,
            "intervalSeconds and everyCycles are mutually exclusive: a check runs on its own \
             interval or on its zone's cycles",
        );
    }
    let timeout = spec.timeout_seconds;
    let interval = match spec.every_cycles {
        Some(_) => None,
        None => Some(spec.interval_seconds.unwrap_or(DEFAULT_INTERVAL_SECONDS)),
    };
    let intervals = [
        ("intervalSeconds", interval),
        ("retryIntervalSeconds", spec.retry_interval_seconds),
    ];
    for (field, interval) in intervals {
        if let Some(interval) = interval
            && timeout >= interval
        {
            let message =
                format!("timeoutSeconds {timeout} must be shorter than {field} {interval}");
            diagnostics.error(object, Reason::InvalidTiming, message);
        }
    }
}

/// Instantiates a valid template with the given values.
pub fn instantiate(
    template: &Template<'_>,
    given: &BTreeMap<String, ParameterValue>,
) -> Result<Instance, Vec<Problem>> {
    let values = resolve_values(template, given)?;
    let check = substitute_check(&template.spec.check, &values).map_err(|e| {
        vec![Problem::new(
            Reason::InvalidParameter,
            format!("template {}: {e}", template.key()),
        )]
    })?;
    let substitute = |text: &Option<String>| text.as_deref().map(|t| substitute_text(t, &values));
    let instance = Instance {
        check,
        warning: substitute(&template.spec.warning),
        critical: substitute(&template.spec.critical),
        condition: substitute(&template.spec.condition),
    };
    let problems: Vec<Problem> = [
        ("warning", &instance.warning),
        ("critical", &instance.critical),
    ]
    .into_iter()
    .filter_map(|(field, value)| Some((field, value.as_deref()?)))
    .filter_map(|(field, value)| threshold_problem(field, value))
    .collect();
    if problems.is_empty() {
        Ok(instance)
    } else {
        Err(problems)
    }
}

/// The text each declared parameter stands for, or every problem with the values.
fn resolve_values(
    template: &Template<'_>,
    given: &BTreeMap<String, ParameterValue>,
) -> Result<BTreeMap<String, String>, Vec<Problem>> {
    let parameters = &template.spec.parameters;
    let mut problems = Vec::new();
    for name in given
        .keys()
        .filter(|n| !parameters.iter().any(|p| &p.name == *n))
    {
        let names: Vec<&str> = parameters.iter().map(|p| p.name.as_str()).collect();
        let has = if names.is_empty() {
            "none".to_owned()
        } else {
            names.join(", ")
        };
        problems.push(Problem::new(
            Reason::UnknownParameter,
            format!(
                "template {}: unknown parameter {name} (template has: {has})",
                template.key()
            ),
        ));
    }
    let mut values = BTreeMap::new();
    for parameter in parameters {
        let name = &parameter.name;
        let value = match (given.get(name), parameter.required, &parameter.default) {
            (Some(value), _, _) => value,
            (None, true, _) => {
                problems.push(Problem::new(
                    Reason::MissingParameter,
                    format!("template {}: parameter {name} is required", template.key()),
                ));
                continue;
            }
            (None, false, Some(default)) => default,
            (None, false, None) => {
                let message =
                    format!("parameter {name} has no value and the template gives no default");
                problems.push(Problem::new(Reason::MissingParameter, message));
                continue;
            }
        };
        match resolve(parameter, value) {
            Ok(text) => {
                if let Some(other) = parameter_names(&text).find(|n| *n != HOST) {
                    let message = format!(
                        "parameter {name}: value {} uses ${other}$; only $host$ may appear in values",
                        shown(value)
                    );
                    problems.push(Problem::new(Reason::InvalidParameter, message));
                }
                values.insert(name.clone(), text);
            }
            Err(error) => {
                let message = format!("template {}: parameter {name}: {error}", template.key());
                problems.push(Problem::new(Reason::InvalidParameter, message));
            }
        }
    }
    if problems.is_empty() {
        Ok(values)
    } else {
        Err(problems)
    }
}

/// The template `namespace/name`, if it exists and is valid.
pub fn find_template<'t>(
    templates: &BTreeMap<(&str, &str), Template<'t>>,
    namespace: &str,
    name: &str,
) -> Result<Template<'t>, Vec<(Reason, String)>> {
    match templates.get(&(namespace, name)) {
        None => Err(vec![(
            Reason::UnknownTemplate,
            format!("template {namespace}/{name} not found"),
        )]),
        Some(template) if !template.valid => Err(vec![(
            Reason::InvalidTemplate,
            format!("template {namespace}/{name} is invalid (see its diagnostics)"),
        )]),
        Some(template) => Ok(*template),
    }
}
/// Why `value` cannot be the `field` threshold: not in Nagios range syntax, or not a range
/// the agent accepts (the same parser, `vedette_protocol::range`, so a published threshold is
/// never refused by an agent: `10:5` is refused here, not on every machine).
fn threshold_problem(field: &str, value: &str) -> Option<Problem> {
    let message = if !is_threshold(value) {
        format!("{field} {value:?} is not a Nagios range")
    } else {
        let error = Range::parse(value).err()?;
        format!("{field}: {error}")
    };
    Some(Problem::new(Reason::InvalidThreshold, message))
}
