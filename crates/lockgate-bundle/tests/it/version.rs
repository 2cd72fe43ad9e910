//! Versions: strict `x.y.z` parsing, numeric order, display, serde as a string, bumps.

use lockgate_bundle::Version;

#[test]
fn parses_three_decimal_numbers() {
    let cases = [
        ("1.2.3", (1, 2, 3)),
        ("0.0.0", (0, 0, 0)),
        ("01.0.0", (1, 0, 0)),
        ("1.10.0", (1, 10, 0)),
        ("18446744073709551615.0.7", (u64::MAX, 0, 7)),
    ];
    for (text, (major, minor, patch)) in cases {
        assert_eq!(text.parse(), Ok(Version { major, minor, patch }), "{text}");
    }
}

#[test]
fn refuses_anything_else() {
    let cases = [
        "4.0",
        "4",
        "",
        "1.2.3.4",
        "v1.2.3",
        "1.2.x",
        "1..2",
        "1.2.",
        " 1.2.3",
        "1.2.3 ",
        "1.2.3-beta",
        "1.2.3+build",
        "+1.2.3",
        "-1.2.3",
        "1.٢.3",
        "18446744073709551616.0.0",
    ];
    for text in cases {
        let error = text.parse::<Version>().expect_err(text);
        assert_eq!(
            error.to_string(),
            format!("{text} is not a valid semver: version folders are named x.y.z")
        );
    }
}

#[test]
fn orders_numerically() {
    let mut versions: Vec<Version> = ["1.10.0", "1.2.0", "0.9.9", "1.2.10", "1.2.9", "10.0.0", "2.0.0"]
        .iter()
        .map(|text| text.parse().expect("valid"))
        .collect();
    versions.sort();
    let sorted: Vec<String> = versions.iter().map(Version::to_string).collect();
    assert_eq!(
        sorted,
        ["0.9.9", "1.2.0", "1.2.9", "1.2.10", "1.10.0", "2.0.0", "10.0.0"]
    );
}

#[test]
fn displays_and_serializes_as_the_string() {
    let version = Version::new(1, 2, 3);
    assert_eq!(version.to_string(), "1.2.3");
    assert_eq!(serde_json::to_string(&version).ok().as_deref(), Some(r#""1.2.3""#));
    assert_eq!(serde_json::from_str::<Version>(r#""1.2.3""#).ok(), Some(version));
    // Leading zeros are read but not written back.
    assert_eq!(
        Version::new(1, 0, 0).to_string(),
        "01.0.0".parse::<Version>().expect("valid").to_string()
    );
    let error = serde_json::from_str::<Version>(r#""4.0""#).expect_err("not x.y.z");
    assert_eq!(
        error.to_string(),
        "4.0 is not a valid semver: version folders are named x.y.z at line 1 column 5"
    );
    assert!(serde_json::from_str::<Version>("123").is_err());
}

#[test]
fn bumps() {
    let version = Version::new(1, 2, 3);
    assert_eq!(version.bump_patch(), Version::new(1, 2, 4));
    assert_eq!(version.bump_minor(), Version::new(1, 3, 0));
    assert_eq!(Version::new(0, 0, u64::MAX).bump_patch(), Version::new(0, 0, u64::MAX));
}
