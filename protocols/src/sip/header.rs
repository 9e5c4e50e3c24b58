//! Header names (long and compact forms) and the raw header list of a message.
//!
//! Values stay raw `Bytes` (slices of the received buffer unless a folded line had to be
//! joined); the typed views in [`super::typed`] parse them on demand.

use bytes::Bytes;

macro_rules! header_names {
    ($($variant:ident => $name:literal $(, $compact:literal)?;)*) => {
        /// A header name. Known names are variants (compact forms map to them); others keep
        /// their spelling in [`HeaderName::Other`].
        #[derive(Debug, Clone, PartialEq, Eq, Hash)]
        #[non_exhaustive]
        pub enum HeaderName {
            $(
                #[doc = concat!("`", $name, "`")]
                $variant,
            )*
            /// Any other header, name as written.
            Other(Bytes),
        }

        impl HeaderName {
            /// The canonical (long) name, e.g. `Call-ID`.
            pub fn as_str(&self) -> &str {
                match self {
                    $(HeaderName::$variant => $name,)*
                    HeaderName::Other(b) => std::str::from_utf8(b).unwrap_or("X-Invalid"),
                }
            }

            /// Recognises a name (case-insensitive, long or compact form).
            pub fn from_bytes(raw: Bytes) -> HeaderName {
                HeaderName::known(&raw).unwrap_or(HeaderName::Other(raw))
            }

            /// The known header `s` names (case-insensitive, long or compact form), without
            /// taking the bytes: `None` for any other name.
            pub fn known(s: &[u8]) -> Option<HeaderName> {
                $(
                    if s.eq_ignore_ascii_case($name.as_bytes()) $(|| s.eq_ignore_ascii_case($compact.as_bytes()))? {
                        return Some(HeaderName::$variant);
                    }
                )*
                None
            }

            /// True if `s` (any case, long or compact form) names this header.
            pub fn is_named(&self, s: &[u8]) -> bool {
                match self {
                    $(HeaderName::$variant => s.eq_ignore_ascii_case($name.as_bytes()) $(|| s.eq_ignore_ascii_case($compact.as_bytes()))?,)*
                    HeaderName::Other(b) => s.eq_ignore_ascii_case(b),
                }
            }

            /// A static canonical name for error messages.
            pub(crate) fn static_name(&self) -> &'static str {
                match self {
                    $(HeaderName::$variant => $name,)*
                    HeaderName::Other(_) => "extension",
                }
            }
        }
    };
}

header_names! {
    Via => "Via", "v";
    From => "From", "f";
    To => "To", "t";
    CallId => "Call-ID", "i";
    CSeq => "CSeq";
    MaxForwards => "Max-Forwards";
    Route => "Route";
    RecordRoute => "Record-Route";
    Contact => "Contact", "m";
    ContentType => "Content-Type", "c";
    ContentLength => "Content-Length", "l";
    ContentEncoding => "Content-Encoding", "e";
    ContentDisposition => "Content-Disposition";
    RetryAfter => "Retry-After";
    WwwAuthenticate => "WWW-Authenticate";
    ProxyAuthenticate => "Proxy-Authenticate";
    Authorization => "Authorization";
    ProxyAuthorization => "Proxy-Authorization";
    Expires => "Expires";
    Supported => "Supported", "k";
    Require => "Require";
    Subject => "Subject", "s";
    Event => "Event", "o";
    ReferTo => "Refer-To", "r";
    Allow => "Allow";
    UserAgent => "User-Agent";
    Server => "Server";
    Reason => "Reason";
}

impl HeaderName {
    /// Headers whose comma-separated values are separate entries (RFC 3261 §7.3.1) and which
    /// the parser splits: Via, Route, Record-Route, Contact.
    pub fn is_list(&self) -> bool {
        matches!(
            self,
            HeaderName::Via | HeaderName::Route | HeaderName::RecordRoute | HeaderName::Contact
        )
    }

    /// True if `name` (any case, long or compact) designates this header.
    pub fn matches(&self, name: &str) -> bool {
        match (
            self,
            HeaderName::from_bytes(Bytes::copy_from_slice(name.as_bytes())),
        ) {
            (HeaderName::Other(a), HeaderName::Other(b)) => a.eq_ignore_ascii_case(&b),
            (a, b) => *a == b,
        }
    }
}

/// One header line (or one element of a comma-joined list header).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    /// The header's name.
    pub name: HeaderName,
    /// The value, trimmed, folded lines joined with one space.
    pub value: Bytes,
}

/// The headers of a message, in order (order matters for Via and Route).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Headers(pub Vec<Header>);

impl Headers {
    /// The first value of `name`.
    pub fn get(&self, name: &HeaderName) -> Option<&Bytes> {
        self.0.iter().find(|h| h.name == *name).map(|h| &h.value)
    }

    /// All values of `name`, in order.
    pub fn get_all<'a>(&'a self, name: &'a HeaderName) -> impl Iterator<Item = &'a Bytes> + 'a {
        self.0
            .iter()
            .filter(move |h| h.name == *name)
            .map(|h| &h.value)
    }

    /// The first value of the header spelled `name` (any case, long or compact form).
    pub fn get_named(&self, name: &str) -> Option<&Bytes> {
        self.0
            .iter()
            .find(|h| h.name.matches(name))
            .map(|h| &h.value)
    }

    /// Appends a header.
    pub fn push(&mut self, name: HeaderName, value: impl Into<Bytes>) {
        self.0.push(Header {
            name,
            value: value.into(),
        });
    }

    /// Inserts a header before all others of the same name (or at the top if none): where a
    /// proxy puts its Via and Record-Route.
    pub fn push_front(&mut self, name: HeaderName, value: impl Into<Bytes>) {
        let at = self.0.iter().position(|h| h.name == name).unwrap_or(0);
        self.0.insert(
            at,
            Header {
                name,
                value: value.into(),
            },
        );
    }

    /// Removes and returns the first value of `name` (a proxy pops its own Via or Route).
    pub fn remove_first(&mut self, name: &HeaderName) -> Option<Bytes> {
        let at = self.0.iter().position(|h| h.name == *name)?;
        Some(self.0.remove(at).value)
    }

    /// Removes every value of `name`.
    pub fn remove_all(&mut self, name: &HeaderName) {
        self.0.retain(|h| h.name != *name);
    }

    /// Replaces every value of `name` by one value (appended if absent).
    pub fn set(&mut self, name: HeaderName, value: impl Into<Bytes>) {
        let value = value.into();
        match self.0.iter().position(|h| h.name == name) {
            Some(at) => {
                if let Some(h) = self.0.get_mut(at) {
                    h.value = value;
                }
                let mut i = 0;
                self.0.retain(|h| {
                    i += 1;
                    i - 1 <= at || h.name != name
                });
            }
            None => self.push(name, value),
        }
    }

    /// Iterates over the headers in order.
    pub fn iter(&self) -> std::slice::Iter<'_, Header> {
        self.0.iter()
    }

    /// Number of header entries.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// True if there are no headers.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}
