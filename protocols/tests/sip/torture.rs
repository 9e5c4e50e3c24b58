//! Hand-written torture messages in the spirit of RFC 4475: real-world shapes that must parse,
//! and broken ones that must fail with a precise error. Shared by the parse tests, the
//! differential test and the fuzz corpus seeds.

/// Messages that must parse (name, bytes).
pub const VALID: &[(&str, &str)] = &[
    (
        "invite_with_sdp",
        "INVITE sip:+15555551234@trunk.example.com;user=phone SIP/2.0\r\n\
Via: SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bK776asdhds;rport\r\n\
Max-Forwards: 70\r\n\
To: <sip:+15555551234@trunk.example.com>\r\n\
From: \"Alice\" <sip:+15550001111@pbx.example.org>;tag=1928301774\r\n\
Call-ID: a84b4c76e66710@pc33.example.org\r\n\
CSeq: 314159 INVITE\r\n\
Contact: <sip:alice@192.0.2.10:5060>\r\n\
Content-Type: application/sdp\r\n\
Content-Length: 153\r\n\
\r\n\
v=0\r\n\
o=alice 2890844526 2890844526 IN IP4 192.0.2.10\r\n\
s=-\r\n\
c=IN IP4 192.0.2.10\r\n\
t=0 0\r\n\
m=audio 49170 RTP/AVP 0 8 101\r\n\
a=rtpmap:101 telephone-event/8000\r\n",
    ),
    (
        "compact_forms",
        "OPTIONS sip:trunk.example.com SIP/2.0\r\n\
v: SIP/2.0/TCP client.example.org:5060;branch=z9hG4bKcompact\r\n\
f: <sip:probe@example.org>;tag=abc\r\n\
t: sip:trunk.example.com\r\n\
i: compact-1@example.org\r\n\
CSeq: 1 OPTIONS\r\n\
m: <sip:probe@client.example.org>\r\n\
k: timer\r\n\
s: hello\r\n\
l: 0\r\n\
\r\n",
    ),
    (
        "folded_and_spaces_before_colon",
        "BYE sip:bob@192.0.2.4 SIP/2.0\r\n\
Via  :  SIP/2.0/UDP 192.0.2.1;branch=z9hG4bKfold\r\n\
Max-Forwards\t: 70\r\n\
From: <sip:alice@example.org>\r\n\
\x20;tag=folded\r\n\
To: <sip:bob@example.com>;tag=xyz\r\n\
Call-ID: fold-1\r\n\
Subject: first part\r\n\
\tsecond part\r\n\
CSeq: 2 BYE\r\n\
Content-Length: 0\r\n\
\r\n",
    ),
    (
        "comma_joined_lists",
        "INVITE sip:bob@example.com SIP/2.0\r\n\
Via: SIP/2.0/UDP p1.example.com;branch=z9hG4bKp1, SIP/2.0/UDP p2.example.com:5070;branch=z9hG4bKp2;received=198.51.100.7\r\n\
Via: SIP/2.0/UDP [2001:db8::9]:5080;branch=z9hG4bKp3;rport=5081\r\n\
Route: <sip:p1.example.com;lr>, <sip:p2.example.com;lr>\r\n\
Record-Route: <sip:rr1.example.com;lr>,<sip:rr2.example.com;lr>\r\n\
Contact: \"Bob, Jr.\" <sip:bob@192.0.2.4>;q=0.7, <sip:bob@bob.example.com;transport=tcp>;expires=60\r\n\
From: <sip:alice@example.org>;tag=a\r\n\
To: <sip:bob@example.com>\r\n\
Call-ID: lists-1\r\n\
CSeq: 7 INVITE\r\n\
Content-Length: 0\r\n\
\r\n",
    ),
    (
        "ipv6_everywhere",
        "REGISTER sips:[2001:db8::1]:5061;transport=tls SIP/2.0\r\n\
Via: SIP/2.0/TLS [2001:db8::2]:5061;branch=z9hG4bKv6\r\n\
From: <sips:user@[2001:db8::2]>;tag=v6\r\n\
To: <sips:user@[2001:db8::2]>\r\n\
Call-ID: v6-1\r\n\
CSeq: 1 REGISTER\r\n\
Contact: <sips:user@[2001:db8::2]:5061>\r\n\
Content-Length: 0\r\n\
\r\n",
    ),
    (
        "tel_uri_and_unquoted_display",
        "INVITE tel:+1-555-555-1234;phone-context=+1 SIP/2.0\r\n\
Via: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bKtel\r\n\
From: Alice Smith <tel:+15550001111>;tag=t1\r\n\
To: tel:+15555551234\r\n\
Call-ID: tel-1\r\n\
CSeq: 1 INVITE\r\n\
Content-Length: 0\r\n\
\r\n",
    ),
    (
        "uri_with_params_and_headers",
        "INVITE sip:user:secret@example.com:5070;transport=udp;maddr=239.255.255.1?Subject=hi&Priority=urgent SIP/2.0\r\n\
Via: SIP/2.0/UDP host.example.com;branch=z9hG4bKuri\r\n\
From: \"quoted \\\"name\\\"\" <sip:a@example.com>;tag=q\r\n\
To: <sip:user@example.com>\r\n\
Call-ID: uri-1\r\n\
CSeq: 1 INVITE\r\n\
Content-Length: 0\r\n\
\r\n",
    ),
    (
        "response_200_ok",
        "SIP/2.0 200 OK\r\n\
Via: SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bK776asdhds;received=203.0.113.5;rport=40000\r\n\
Record-Route: <sip:proxy.example.com;lr>\r\n\
To: <sip:+15555551234@trunk.example.com>;tag=8321234356\r\n\
From: \"Alice\" <sip:+15550001111@pbx.example.org>;tag=1928301774\r\n\
Call-ID: a84b4c76e66710@pc33.example.org\r\n\
CSeq: 314159 INVITE\r\n\
Contact: <sip:bob@198.51.100.20>\r\n\
Content-Type: application/sdp\r\n\
Content-Length: 0\r\n\
\r\n",
    ),
    (
        "response_503_retry_after_no_reason",
        "SIP/2.0 503\r\n\
Via: SIP/2.0/UDP 192.0.2.10;branch=z9hG4bK503\r\n\
To: <sip:x@example.com>;tag=r\r\n\
From: <sip:y@example.com>;tag=s\r\n\
Call-ID: r-1\r\n\
CSeq: 1 INVITE\r\n\
Retry-After: 120 (maintenance);duration=3600\r\n\
Content-Length: 0\r\n\
\r\n",
    ),
    (
        "bare_lf_and_keepalive_prefix",
        "\r\n\r\nMESSAGE sip:bob@example.com SIP/2.0\n\
Via: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bKlf\n\
From: <sip:alice@example.org>;tag=lf\n\
To: <sip:bob@example.com>\n\
Call-ID: lf-1\n\
CSeq: 3 MESSAGE\n\
Content-Type: text/plain\n\
\n\
hello without content-length",
    ),
    (
        "multipart_mixed",
        "INVITE sip:+4930123@trunk.example.com SIP/2.0\r\n\
Via: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bKmp\r\n\
From: <sip:a@example.org>;tag=mp\r\n\
To: <sip:+4930123@trunk.example.com>\r\n\
Call-ID: mp-1\r\n\
CSeq: 1 INVITE\r\n\
Content-Type: multipart/mixed;boundary=\"unique-boundary-1\"\r\n\
Content-Length: 227\r\n\
\r\n\
--unique-boundary-1\r\n\
Content-Type: application/sdp\r\n\
\r\n\
v=0\r\n\
o=- 1 1 IN IP4 192.0.2.1\r\n\
s=-\r\n\
c=IN IP4 192.0.2.1\r\n\
t=0 0\r\n\
m=audio 4000 RTP/AVP 8\r\n\
\r\n\
--unique-boundary-1\r\n\
Content-Type: application/isup\r\n\
\r\n\
ISUP\r\n\
--unique-boundary-1--\r\n",
    ),
    (
        "extension_method_and_headers",
        "FOOBAR sip:x@example.com SIP/2.0\r\n\
Via: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bKext\r\n\
From: <sip:a@example.org>;tag=e\r\n\
To: <sip:x@example.com>\r\n\
Call-ID: ext-1\r\n\
CSeq: 1 FOOBAR\r\n\
X-Custom-Header: some value, with comma\r\n\
P-Asserted-Identity: <sip:+15550001111@example.org>\r\n\
Content-Length: 0\r\n\
\r\n",
    ),
];

/// Messages that must be rejected (name, bytes, expected error text fragment).
pub const INVALID: &[(&str, &str, &str)] = &[
    ("empty", "\r\n\r\n", "empty message"),
    (
        "bad_version",
        "INVITE sip:a@b SIP/3.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\n\r\n",
        "version",
    ),
    (
        "missing_call_id",
        "OPTIONS sip:a@b SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\nFrom: <sip:a@b>;tag=1\r\nTo: <sip:a@b>\r\nCSeq: 1 OPTIONS\r\n\r\n",
        "missing Call-ID",
    ),
    (
        "cseq_method_mismatch",
        "BYE sip:a@b SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\nFrom: <sip:a@b>;tag=1\r\nTo: <sip:a@b>\r\nCall-ID: x\r\nCSeq: 1 INVITE\r\n\r\n",
        "CSeq method",
    ),
    (
        "bad_cseq_number",
        "BYE sip:a@b SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\nFrom: <sip:a@b>;tag=1\r\nTo: <sip:a@b>\r\nCall-ID: x\r\nCSeq: -1 BYE\r\n\r\n",
        "CSeq",
    ),
    (
        "body_shorter_than_content_length",
        "MESSAGE sip:a@b SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\nFrom: <sip:a@b>;tag=1\r\nTo: <sip:a@b>\r\nCall-ID: x\r\nCSeq: 1 MESSAGE\r\nContent-Length: 50\r\n\r\nshort",
        "body shorter",
    ),
    (
        "conflicting_content_length",
        "MESSAGE sip:a@b SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\nFrom: <sip:a@b>;tag=1\r\nTo: <sip:a@b>\r\nCall-ID: x\r\nCSeq: 1 MESSAGE\r\nContent-Length: 1\r\nl: 2\r\n\r\nab",
        "Content-Length",
    ),
    (
        "bad_request_uri",
        "INVITE not-a-uri SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\n\r\n",
        "URI",
    ),
    (
        "unclosed_ipv6",
        "INVITE sip:a@[2001:db8::1 SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\n\r\n",
        "IPv6",
    ),
    (
        "bad_via",
        "OPTIONS sip:a@b SIP/2.0\r\nVia: HTTP/1.1 h\r\nFrom: <sip:a@b>;tag=1\r\nTo: <sip:a@b>\r\nCall-ID: x\r\nCSeq: 1 OPTIONS\r\n\r\n",
        "Via",
    ),
    (
        "header_without_colon",
        "OPTIONS sip:a@b SIP/2.0\r\nVia SIP/2.0/UDP h\r\n\r\n",
        "header line",
    ),
    (
        "status_code_out_of_range",
        "SIP/2.0 999 Nope\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\n\r\n",
        "status code",
    ),
    (
        "unclosed_angle_in_to",
        "OPTIONS sip:a@b SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\nFrom: <sip:a@b>;tag=1\r\nTo: <sip:a@b\r\nCall-ID: x\r\nCSeq: 1 OPTIONS\r\n\r\n",
        "To",
    ),
    (
        "bad_port",
        "OPTIONS sip:a@b:99999 SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\n\r\n",
        "port",
    ),
    (
        "garbage_in_via_param_value",
        "OPTIONS sip:a@b SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK776ceived=203.0.113.5\r\nFrom: <sip:a@b>;tag=1\r\nTo: <sip:a@b>\r\nCall-ID: x\r\nCSeq: 1 OPTIONS\r\n\r\n",
        "Via",
    ),
    (
        "bad_param_name_in_from",
        "OPTIONS sip:a@b SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\nFrom: <sip:a@b>;ta]g=1\r\nTo: <sip:a@b>\r\nCall-ID: x\r\nCSeq: 1 OPTIONS\r\n\r\n",
        "From",
    ),
];
