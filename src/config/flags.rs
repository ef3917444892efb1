//! The settings as the command line shows them: which flags take a value,
//! and a bad environment variable reported under its own name.
//!
//! Only a boolean flag may stand without a value (`--echo` means
//! `--echo true`); every other flag needs one, so `--listen` alone is
//! "a value is required", not an attempt to parse "true" as an address.
//!
//! clap reads each `PARLEY_*` variable as if its flag had been given and
//! words a bad value that way too; [`env_value_error`] turns such an error
//! back into one naming the variable, like every other config error names
//! its key.

use std::any::TypeId;
use std::ffi::OsString;

use super::ENV_VARS;

/// Values a flag of type `T` takes: a boolean may stand alone (a switch),
/// anything else needs exactly one.
pub(super) fn value_count<T: 'static>() -> std::ops::RangeInclusive<usize> {
    if is_switch::<T>() {
        0..=1
    } else {
        1..=1
    }
}

/// What a flag standing alone means: `true` for a switch; nothing for the
/// rest, which clap then reports as a missing value.
pub(super) fn missing_value<T: 'static>() -> Option<&'static str> {
    is_switch::<T>().then_some("true")
}

fn is_switch<T: 'static>() -> bool {
    TypeId::of::<T>() == TypeId::of::<bool>()
}

/// Clap's error for a bad value that came from a `PARLEY_*` variable,
/// reworded to name the variable: clap words it as if the flag had been
/// given, which sends the operator looking for a flag that is not there.
/// `None` when the error is about something else or the command line
/// (`args`) gave the flag that same value; `var` reads the environment.
///
/// A subcommand's flag does not stop the top level from reading the
/// variable, so a bad one is reported even beside a good flag there.
pub fn env_value_error(
    err: &clap::Error,
    args: &[OsString],
    var: impl Fn(&str) -> Option<OsString>,
) -> Option<String> {
    use clap::error::{ContextKind, ContextValue, ErrorKind};

    if !matches!(
        err.kind(),
        ErrorKind::ValueValidation | ErrorKind::InvalidValue
    ) {
        return None;
    }
    // "--max-rooms <MAX_ROOMS>" or "--echo [<ECHO>]"
    let Some(ContextValue::String(arg)) = err.get(ContextKind::InvalidArg) else {
        return None;
    };
    let Some(ContextValue::String(bad)) = err.get(ContextKind::InvalidValue) else {
        return None;
    };
    let flag = arg.split(' ').next()?;
    let key = flag.strip_prefix("--")?.replace('-', "_");
    let &(key, env) = ENV_VARS.iter().find(|(name, _)| *name == key)?;
    let value = var(env)?;
    if value.to_str() != Some(bad.as_str()) || gives(args, flag, bad) {
        return None;
    }
    let why = match (
        std::error::Error::source(err),
        err.get(ContextKind::ValidValue),
    ) {
        (Some(source), _) => format!(": {source}"),
        (None, Some(ContextValue::Strings(valid))) => format!(": expected {}", valid.join(" or ")),
        _ => String::new(),
    };
    Some(format!("{env}: invalid value {value:?} for {key}{why}"))
}

/// Whether the command line gives `flag` the value `value`, as
/// `flag value` or `flag=value`.
fn gives(args: &[OsString], flag: &str, value: &str) -> bool {
    let joined = format!("{flag}={value}");
    let words: Vec<_> = args.iter().map(|a| a.to_str()).collect();
    words.iter().enumerate().any(|(i, word)| match *word {
        Some(w) if w == joined => true,
        Some(w) if w == flag => words.get(i + 1) == Some(&Some(value)),
        _ => false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Config, FlagSettings};
    use clap::error::ErrorKind;
    use clap::{CommandFactory, Parser};

    /// The settings' flags alone, as the binary flattens them.
    #[derive(Debug, Parser)]
    struct Flags {
        #[command(flatten)]
        settings: FlagSettings,
    }

    fn flags(args: &[&str]) -> Result<FlagSettings, clap::Error> {
        let argv = std::iter::once("parley").chain(args.iter().copied());
        Flags::try_parse_from(argv).map(|f| f.settings)
    }

    #[test]
    fn only_boolean_flags_may_stand_without_a_value() {
        let mut cmd = Flags::command();
        cmd.build();
        let defaults = serde_json::to_value(Config::default()).unwrap();
        let mut checked = 0;
        for arg in cmd.get_arguments().filter(|a| a.get_id() != "help") {
            let key = arg.get_id().as_str();
            let switch = defaults[key].is_boolean();
            let optional = arg.get_num_args().unwrap().min_values() == 0;
            assert_eq!(optional, switch, "--{key}");
            checked += 1;
        }
        assert_eq!(checked, ENV_VARS.len());

        let err = flags(&["--listen"]).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidValue);
        let text = err.to_string();
        assert!(text.contains("a value is required for '--listen"), "{text}");
        assert!(!text.contains("'true'"), "{text}");

        let set = flags(&["--echo", "--allow-guests", "false", "--reactors", "3"]).unwrap();
        assert_eq!(set.echo, Some(true));
        assert_eq!(set.allow_guests, Some(false));
        assert_eq!(set.reactors, Some(3));
    }

    #[test]
    fn a_bad_environment_value_names_the_variable() {
        let argv = |words: &[&str]| -> Vec<OsString> {
            std::iter::once("parley")
                .chain(words.iter().copied())
                .map(OsString::from)
                .collect()
        };
        let env = |var: &str| match var {
            "PARLEY_MAX_ROOMS" => Some(OsString::from("abc")),
            "PARLEY_ECHO" => Some(OsString::from("maybe")),
            _ => None,
        };
        // Clap reads the variable as if the flag had been given; the same
        // error comes from giving the flag, without touching the process
        // environment.
        let rooms = flags(&["--max-rooms", "abc"]).unwrap_err();
        let said = env_value_error(&rooms, &argv(&[]), env).unwrap();
        assert!(
            said.starts_with("PARLEY_MAX_ROOMS: invalid value \"abc\" for max_rooms: "),
            "{said}"
        );
        assert!(!said.contains("--max-rooms"), "{said}");

        let echo = flags(&["--echo", "maybe"]).unwrap_err();
        let said = env_value_error(&echo, &argv(&["print-config"]), env).unwrap();
        assert_eq!(
            said,
            "PARLEY_ECHO: invalid value \"maybe\" for echo: expected true or false"
        );

        // The bad value on the command line keeps clap's own wording.
        for given in [&["--max-rooms", "abc"][..], &["--max-rooms=abc"]] {
            assert_eq!(env_value_error(&rooms, &argv(given), env), None);
        }
        let good_flag = argv(&["print-config", "--max-rooms", "7"]);
        assert!(env_value_error(&rooms, &good_flag, env).is_some());
        assert_eq!(env_value_error(&rooms, &argv(&[]), |_| None), None);
        let other = |_: &str| Some(OsString::from("12"));
        assert_eq!(env_value_error(&rooms, &argv(&[]), other), None);
        let missing = flags(&["--listen"]).unwrap_err();
        assert_eq!(env_value_error(&missing, &argv(&["--listen"]), env), None);
    }
}
