//! Text-to-speech with `espeak-ng` (Debian package `espeak-ng`) as a subprocess:
//! `espeak-ng --stdout -v <language> --stdin` reads the text on stdin (never on the command
//! line, where other local users could read it and where a leading `-` would be an option) and
//! writes a WAV (22,050 Hz mono 16-bit) on stdout. The run is bounded by a timeout (the child is killed) and its output by a size
//! limit. Results are kept per (language, text) in a small LRU ([`TtsCache`]) because a
//! campaign speaks the same text to many numbers.

use std::collections::{HashMap, HashSet, VecDeque};
use std::process::Stdio;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use parking_lot::Mutex;
use tokio::io::AsyncReadExt;

use super::audio::{self, Pcm8k};
use super::AudioError;

/// Largest WAV accepted from the TTS program (≈ 12 minutes at 22,050 Hz 16-bit).
const MAX_TTS_BYTES: usize = 32 << 20;

/// Languages the TTS program knows, read once (`espeak-ng --voices`).
static LANGUAGES: OnceLock<Option<HashSet<String>>> = OnceLock::new();

/// Reads the language list of `command` (blocking; call once at start). Later calls keep the
/// first list.
pub(crate) fn load_languages(command: &str) {
    LANGUAGES.get_or_init(|| read_languages(command));
}

fn read_languages(command: &str) -> Option<HashSet<String>> {
    let out = std::process::Command::new(command)
        .arg("--voices")
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let set: HashSet<String> = text
        .lines()
        .skip(1)
        .filter_map(|l| l.split_whitespace().nth(1))
        .map(str::to_ascii_lowercase)
        .collect();
    (!set.is_empty()).then_some(set)
}

/// Whether `language` is one the TTS program speaks (a voice it lists, or the family of one:
/// `en` for `en-gb`). When its list could not be read (the
/// program is missing), any tag of letters, digits and `-` is accepted and the call fails
/// later with `tts_failed`.
pub(crate) fn language_known(language: &str) -> bool {
    // It goes on the command line after `-v`: letters first, never an option.
    let syntax = language
        .bytes()
        .next()
        .is_some_and(|b| b.is_ascii_alphabetic())
        && language.len() <= 32
        && language
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-');
    if !syntax {
        return false;
    }
    match LANGUAGES.get_or_init(|| read_languages("espeak-ng")) {
        Some(set) => {
            // `en` names the default of its family (`en-gb`, `en-us`, …), as espeak-ng's `-v`.
            let l = language.to_ascii_lowercase();
            let family = format!("{l}-");
            set.contains(&l) || set.iter().any(|v| v.starts_with(&family))
        }
        None => true,
    }
}

/// Runs the TTS program and returns its audio at 8 kHz.
pub(crate) async fn speak(
    command: &str,
    language: &str,
    text: &str,
    timeout: Duration,
) -> Result<Pcm8k, AudioError> {
    let mut child = tokio::process::Command::new(command)
        .args(["--stdout", "-v", language, "--stdin"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| AudioError::Tts(format!("cannot run {command}: {e}")))?;
    let mut stdout = child
        .stdout
        .take()
        .ok_or_else(|| AudioError::Tts("no stdout".into()))?;
    let mut stdin = child
        .stdin
        .take()
        .ok_or_else(|| AudioError::Tts("no stdin".into()))?;
    let input = text.as_bytes().to_vec();
    let run = async {
        // The text is small (≤ 2000 characters): written at once, then stdin closes.
        tokio::io::AsyncWriteExt::write_all(&mut stdin, &input)
            .await
            .map_err(|e| AudioError::Tts(format!("writing to {command}: {e}")))?;
        drop(stdin);
        let mut wav = Vec::with_capacity(256 * 1024);
        (&mut stdout)
            .take(MAX_TTS_BYTES as u64 + 1)
            .read_to_end(&mut wav)
            .await
            .map_err(|e| AudioError::Tts(format!("reading {command}: {e}")))?;
        let status = child
            .wait()
            .await
            .map_err(|e| AudioError::Tts(format!("waiting for {command}: {e}")))?;
        Ok::<_, AudioError>((wav, status))
    };
    let (wav, status) = tokio::time::timeout(timeout, run)
        .await
        .map_err(|_| AudioError::Tts(format!("{command} took longer than {timeout:?}")))??;
    if !status.success() {
        return Err(AudioError::Tts(format!("{command} exited with {status}")));
    }
    if wav.len() > MAX_TTS_BYTES {
        return Err(AudioError::Tts("speech longer than the size limit".into()));
    }
    let pcm = tokio::task::spawn_blocking(move || audio::decode_wav(&wav))
        .await
        .map_err(|e| AudioError::Tts(format!("decoder task: {e}")))??;
    Ok(pcm)
}

/// (language, text) → audio, and the keys in use order (front: least recent).
type Lru = (
    HashMap<(String, String), Arc<Pcm8k>>,
    VecDeque<(String, String)>,
);

/// Rendered speech per (language, text), least recently used evicted first. Concurrent
/// requests for the same text while it renders each render it (rare: the first call of a
/// campaign); the cache only bounds repeated work.
#[derive(Debug)]
pub(crate) struct TtsCache {
    /// Entries kept at most; 0 disables the cache.
    capacity: usize,
    /// (language, text) → audio, and the use order (front: least recent).
    inner: Mutex<Lru>,
}

impl TtsCache {
    /// A cache of at most `capacity` texts.
    pub(crate) fn new(capacity: usize) -> Self {
        TtsCache {
            capacity,
            inner: Mutex::new((HashMap::new(), VecDeque::new())),
        }
    }

    /// The cached audio for (language, text), marking it recently used.
    pub(crate) fn get(&self, language: &str, text: &str) -> Option<Arc<Pcm8k>> {
        let mut g = self.inner.lock();
        let key = (language.to_owned(), text.to_owned());
        let hit = g.0.get(&key).cloned()?;
        if let Some(pos) = g.1.iter().position(|k| *k == key) {
            g.1.remove(pos);
        }
        g.1.push_back(key);
        Some(hit)
    }

    /// Keeps `audio` for (language, text), evicting the least recently used beyond capacity.
    pub(crate) fn put(&self, language: &str, text: &str, audio: Arc<Pcm8k>) {
        if self.capacity == 0 {
            return;
        }
        let mut g = self.inner.lock();
        let key = (language.to_owned(), text.to_owned());
        if g.0.insert(key.clone(), audio).is_none() {
            g.1.push_back(key);
        }
        while g.0.len() > self.capacity {
            let Some(old) = g.1.pop_front() else { break };
            g.0.remove(&old);
        }
    }

    /// Texts cached now.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.inner.lock().0.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cache_evicts_the_least_recently_used() {
        let c = TtsCache::new(2);
        let a = Arc::new(Pcm8k(vec![1]));
        c.put("en", "a", a.clone());
        c.put("en", "b", a.clone());
        assert!(c.get("en", "a").is_some()); // a is now more recent than b
        c.put("en", "c", a);
        assert!(c.get("en", "b").is_none());
        assert!(c.get("en", "a").is_some() && c.get("en", "c").is_some());
        assert_eq!(c.len(), 2);
    }

    #[tokio::test]
    async fn espeak_speaks_english_at_8khz() {
        load_languages("espeak-ng");
        assert!(
            language_known("en"),
            "espeak-ng must be installed (.ci/install)"
        );
        let pcm = speak("espeak-ng", "en", "Hello there", Duration::from_secs(10))
            .await
            .expect("espeak-ng must be installed (.ci/install)");
        // About a second of speech at 8000 samples per second.
        assert!(
            (4000..24000).contains(&pcm.0.len()),
            "{} samples",
            pcm.0.len()
        );
    }
}
