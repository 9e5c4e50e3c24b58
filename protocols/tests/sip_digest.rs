//! Digest authentication: RFC 2617 and RFC 7616 example vectors, both sides, stale nonces.

use switchyard_protocols::sip::digest::{
    answer, ha1, response, Algorithm, AuthError, Challenge, Credentials, DigestError, NonceIssuer,
};

#[test]
fn rfc2617_md5_qop_auth_vector() {
    // RFC 2617 §3.5.
    let h1 = ha1(
        Algorithm::Md5,
        "Mufasa",
        "testrealm@host.com",
        "Circle Of Life",
    );
    let r = response(
        Algorithm::Md5,
        &h1,
        "dcd98b7102dd2f0e8b11d0f600bfb0c093",
        Some("0a4f113b"),
        Some(1),
        Some("auth"),
        "GET",
        "/dir/index.html",
    );
    assert_eq!(r, "6629fae49393a05397450978507c4ef1");
}

#[test]
fn rfc7616_md5_and_sha256_vectors() {
    // RFC 7616 §3.9.1.
    let challenge_md5 = Challenge::parse(
        br#"Digest realm="http-auth@example.org", qop="auth, auth-int", algorithm=MD5, nonce="7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v", opaque="FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS""#,
    )
    .unwrap();
    assert_eq!(challenge_md5.qop, ["auth", "auth-int"]);
    let cnonce = "f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ";
    let creds = answer(
        &challenge_md5,
        "Mufasa",
        "Circle of Life",
        "GET",
        "/dir/index.html",
        cnonce,
        1,
    )
    .unwrap();
    assert_eq!(creds.response, "8ca523f5e9506fed4657c9700eebdbec");
    assert_eq!(
        creds.opaque.as_deref(),
        Some("FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS")
    );

    let challenge_sha = Challenge::parse(
        br#"Digest realm="http-auth@example.org", qop="auth, auth-int", algorithm=SHA-256, nonce="7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v", opaque="FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS""#,
    )
    .unwrap();
    assert_eq!(challenge_sha.algorithm, Algorithm::Sha256);
    let creds = answer(
        &challenge_sha,
        "Mufasa",
        "Circle of Life",
        "GET",
        "/dir/index.html",
        cnonce,
        1,
    )
    .unwrap();
    assert_eq!(
        creds.response,
        "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1"
    );
    // What we send parses back to the same credentials.
    let text = creds.to_header_value();
    assert!(text.contains("nc=00000001"));
    assert!(text.contains("qop=auth"));
    assert_eq!(Credentials::parse(text.as_bytes()).unwrap(), creds);
}

#[test]
fn rfc2069_mode_without_qop() {
    let c = Challenge::parse(br#"Digest realm="r", nonce="n""#).unwrap();
    assert_eq!(c.algorithm, Algorithm::Md5);
    let creds = answer(&c, "u", "p", "INVITE", "sip:x@y", "cn", 1).unwrap();
    assert_eq!(creds.qop, None);
    assert_eq!(creds.cnonce, None);
    let ha1 = Algorithm::Md5.hash_hex(b"u:r:p");
    let ha2 = Algorithm::Md5.hash_hex(b"INVITE:sip:x@y");
    assert_eq!(
        creds.response,
        Algorithm::Md5.hash_hex(format!("{ha1}:n:{ha2}").as_bytes())
    );
}

#[test]
fn challenge_parsing_errors() {
    assert_eq!(
        Challenge::parse(b"Basic realm=\"x\""),
        Err(DigestError::NotDigest)
    );
    assert_eq!(
        Challenge::parse(b"Digest nonce=\"x\""),
        Err(DigestError::Missing("realm"))
    );
    assert_eq!(
        Challenge::parse(b"Digest realm=\"r\", nonce=\"n\", algorithm=SHA-512-256"),
        Err(DigestError::UnsupportedAlgorithm)
    );
    let c = Challenge::parse(b"Digest realm=\"r\", nonce=\"n\", qop=\"auth-int\"").unwrap();
    assert_eq!(
        answer(&c, "u", "p", "INVITE", "sip:a", "c", 1),
        Err(DigestError::UnsupportedQop)
    );
    // Commas inside quotes do not split parameters.
    let c = Challenge::parse(b"Digest realm=\"a, b\", nonce=\"n\", stale=TRUE").unwrap();
    assert_eq!(c.realm, "a, b");
    assert!(c.stale);
}

#[test]
fn server_issues_stateless_nonces_and_verifies_both_algorithms() {
    let issuer = NonceIssuer::new(b"cluster-secret", 300);
    let now = 1_800_000_000;
    for alg in [Algorithm::Md5, Algorithm::Sha256] {
        let challenge = issuer.challenge("switchyard", alg, now, false, 7);
        // Over the wire and back, as a tenant's PBX would.
        let parsed = Challenge::parse(challenge.to_header_value().as_bytes()).unwrap();
        assert_eq!(parsed, challenge);
        let creds = answer(
            &parsed,
            "tenant1",
            "s3cret",
            "INVITE",
            "sip:+15555551234@gw",
            "abc",
            1,
        )
        .unwrap();
        let creds = Credentials::parse(creds.to_header_value().as_bytes()).unwrap();
        assert_eq!(
            issuer.verify(&creds, "switchyard", "INVITE", "s3cret", now + 10),
            Ok(())
        );
        // Every challenge's nonce is its own (the salt), even within one second.
        assert_ne!(
            issuer.challenge("switchyard", alg, now, false, 8).nonce,
            challenge.nonce
        );
        // Any node with the same key verifies it.
        let other_node = NonceIssuer::new(b"cluster-secret", 300);
        assert_eq!(
            other_node.verify(&creds, "switchyard", "INVITE", "s3cret", now + 10),
            Ok(())
        );
        // Stored HA1 works too.
        let h1 = ha1(alg, "tenant1", "switchyard", "s3cret");
        assert_eq!(
            issuer.verify_ha1(&creds, "switchyard", "INVITE", &h1, now),
            Ok(())
        );
        assert_eq!(
            issuer.verify(&creds, "switchyard", "INVITE", "wrong", now),
            Err(AuthError::WrongResponse)
        );
        assert_eq!(
            issuer.verify(&creds, "switchyard", "BYE", "s3cret", now),
            Err(AuthError::WrongResponse)
        );
        assert_eq!(
            issuer.verify(&creds, "switchyard", "INVITE", "s3cret", now + 301),
            Err(AuthError::Stale)
        );
        assert_eq!(
            issuer.verify(&creds, "other", "INVITE", "s3cret", now),
            Err(AuthError::WrongRealm)
        );
    }
}

#[test]
fn forged_or_foreign_nonces_are_rejected() {
    let issuer = NonceIssuer::new(b"k1", 300);
    let foreign = NonceIssuer::new(b"k2", 300);
    let now = 1_800_000_000;
    let c = foreign.challenge("switchyard", Algorithm::Md5, now, false, 1);
    let creds = answer(&c, "u", "p", "INVITE", "sip:a", "c", 1).unwrap();
    assert_eq!(
        issuer.verify(&creds, "switchyard", "INVITE", "p", now),
        Err(AuthError::BadNonce)
    );
    // A nonce whose timestamp was moved forward keeps its MAC only if forged: rejected.
    let mut c2 = issuer.challenge("switchyard", Algorithm::Md5, now, false, 2);
    c2.nonce = format!("{:016x}{}", now + 1000, &c2.nonce[16..]);
    let creds = answer(&c2, "u", "p", "INVITE", "sip:a", "c", 1).unwrap();
    assert_eq!(
        issuer.verify(&creds, "switchyard", "INVITE", "p", now),
        Err(AuthError::BadNonce)
    );
    // So does one whose salt was changed (to make a used nonce look new).
    let mut c3 = issuer.challenge("switchyard", Algorithm::Md5, now, false, 5);
    c3.nonce = format!("{}{:016x}{}", &c3.nonce[..16], 6, &c3.nonce[32..]);
    let creds = answer(&c3, "u", "p", "INVITE", "sip:a", "c", 1).unwrap();
    assert_eq!(
        issuer.verify(&creds, "switchyard", "INVITE", "p", now),
        Err(AuthError::BadNonce)
    );
    let mut creds = answer(
        &issuer.challenge("switchyard", Algorithm::Md5, now, false, 3),
        "u",
        "p",
        "INVITE",
        "sip:a",
        "c",
        1,
    )
    .unwrap();
    creds.nonce = "short".into();
    assert_eq!(
        issuer.verify(&creds, "switchyard", "INVITE", "p", now),
        Err(AuthError::BadNonce)
    );
}

#[test]
fn stale_challenge_round_trip() {
    let issuer = NonceIssuer::new(b"k", 60);
    let c = issuer.challenge("r", Algorithm::Sha256, 1000, true, 4);
    let text = c.to_header_value();
    assert!(text.contains("stale=true"));
    assert!(text.contains("algorithm=SHA-256"));
    assert!(Challenge::parse(text.as_bytes()).unwrap().stale);
}
