//! The command line as an operator meets it: flags that need a value say
//! so, and a bad `PARLEY_*` variable is reported under its own name. None
//! of these start a server: each stops at parsing or prints the config.

use std::process::Command;

/// Runs `parley ARGS` with `env` added; (exit code, stdout, stderr).
fn parley(args: &[&str], env: &[(&str, &str)]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_parley"))
        .args(args)
        .envs(env.iter().copied())
        .output()
        .expect("run parley");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn a_flag_without_its_value_is_reported_as_missing() {
    let (code, _, err) = parley(&["--listen"], &[]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("a value is required for '--listen"), "{err}");
    assert!(!err.contains("'true'"), "{err}");

    let (_, help, _) = parley(&["--help"], &[]);
    assert!(help.contains("--listen <LISTEN>"), "{help}");
    assert!(help.contains("--echo [<ECHO>]"), "{help}");
}

#[test]
fn boolean_flags_may_stand_alone() {
    let (code, out, err) = parley(&["print-config", "--echo", "--allow-guests", "false"], &[]);
    assert_eq!(code, 0, "{err}");
    let table: toml::Table = toml::from_str(&out).expect("TOML");
    assert_eq!(table["echo"].as_bool(), Some(true));
    assert_eq!(table["allow_guests"].as_bool(), Some(false));
}

#[test]
fn a_bad_environment_variable_is_named() {
    let cases = [
        ("PARLEY_MAX_ROOMS", "abc", "--max-rooms"),
        ("PARLEY_LISTEN", "nowhere", "--listen"),
        ("PARLEY_ECHO", "maybe", "--echo"),
    ];
    for (var, value, flag) in cases {
        for args in [&[][..], &["print-config"]] {
            let (code, out, err) = parley(args, &[(var, value)]);
            assert_eq!(code, 2, "{var} {args:?}: {err}");
            assert!(out.is_empty(), "{var}: {out}");
            let want = format!("{var}: invalid value \"{value}\"");
            assert!(err.contains(&want), "{var} {args:?}: {err}");
            assert!(!err.contains(flag), "{var} named as a flag: {err}");
        }
    }

    // Given on the command line, the flag is what is named.
    let (code, _, err) = parley(&["--max-rooms", "abc"], &[]);
    assert_eq!(code, 2);
    assert!(err.contains("'--max-rooms <MAX_ROOMS>'"), "{err}");
    // A good flag beside a bad variable: the variable is what is wrong.
    let (code, _, err) = parley(
        &["print-config", "--max-rooms", "7"],
        &[("PARLEY_MAX_ROOMS", "abc")],
    );
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("PARLEY_MAX_ROOMS: invalid value"), "{err}");
    // A good variable is overridden by the flag as ever.
    let (code, out, err) = parley(
        &["print-config", "--max-rooms", "7"],
        &[("PARLEY_MAX_ROOMS", "9")],
    );
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("max_rooms = 7"), "{out}");
}
