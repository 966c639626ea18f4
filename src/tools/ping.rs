//! `ocho ping`: posts a YAML or JSON payload to each pod's `/control/signal` (the workload's
//! `signaled()` callback) and shows every reply.

use std::io::Read;
use std::process::ExitCode;

use serde_json::{Map, Value, json};

use super::{Glob, Tally, control, output, tool_args};
use crate::error::{Error, Result};

/// Largest payload file accepted (JSON).
const MAX_PAYLOAD: u64 = 1024 * 1024;

/// Largest payload that is not JSON: YAML costs far more per byte to parse, and at this size
/// any YAML text parses or is refused within about 100 ms.
const MAX_YAML_PAYLOAD: usize = crate::definition::MAX_FILE as usize;

tool_args! {
    /// send a payload to each pod's signal handler and show the replies
    #[argh(
        subcommand,
        name = "ping",
        example = "{command_name} reload.yml web -i 1\n    send reload.yml to the signal handler of pod #1 of web, show its reply",
        example = "{command_name} --force payload.json 'web*'\n    send payload.json to every pod of the web clusters",
        note = "Posts the payload (YAML or JSON, sent as JSON) to /control/signal/<t>. \
                A payload holds at most 1 MiB of JSON or 256 KiB of YAML, nested at most \
                64 levels deep.\n\
                Needs --force unless -i picks pods. A glob matching no pod is a failure.\n\
                Text: per glob `<GLOB> -> P% replies (T pods total) ->`, then `- <ns.cluster #seq>` \
                and its reply as indented JSON, then the pods that failed.\n\
                JSON (-j): {{\"<ns.cluster #seq>\": <reply>, …}}; a pod that failed has \
                {{\"error\": \"<reason>\"}} instead."
    )]
    pub struct Args {
        /// the payload file, YAML or JSON
        #[argh(positional)]
        pub payload: String,
        /// cluster globs on <namespace>.<cluster> (a bare name also matches *.name)
        #[argh(positional)]
        pub clusters: Vec<String>,
        /// act on every pod of the globs (without -i)
        #[argh(switch)]
        pub force: bool,
    }
    timeout = "60.0", "seconds the pod's signal handler may take (default 60)";
}

/// Reads the payload as JSON, else as YAML (plain data only), into compact JSON bytes.
fn payload(path: &str) -> Result<Vec<u8>> {
    let file = crate::confine::open("payload", std::path::Path::new(path))?;
    let mut text = String::new();
    file.take(MAX_PAYLOAD + 1)
        .read_to_string(&mut text)
        .map_err(|e| Error::io("read payload", path, e))?;
    if text.len() as u64 > MAX_PAYLOAD {
        return Err(Error::Usage(format!("payload {path} is larger than {MAX_PAYLOAD} bytes")));
    }
    crate::yaml::check_depth(&text).map_err(|e| Error::Usage(format!("payload {path}: {e}")))?;
    let value: Value = match serde_json::from_str(&text) {
        Ok(v) => v,
        Err(_) if text.len() > MAX_YAML_PAYLOAD => {
            return Err(Error::Usage(format!(
                "payload {path} is not JSON, and a YAML payload may hold at most \
                 {MAX_YAML_PAYLOAD} bytes (JSON up to {MAX_PAYLOAD})"
            )));
        }
        Err(_) => crate::yaml::from_str(&text, "a payload")
            .map_err(|e| Error::Usage(format!("payload {path} is neither JSON nor YAML: {e}")))?,
    };
    Ok(value.to_string().into_bytes())
}

pub fn run(args: Args) -> Result<ExitCode> {
    let common = args.common()?;
    common.require_force("ping", args.force)?;
    let globs = Glob::required("ping", &args.clusters)?;
    let body = payload(&args.payload)?;
    let zk = common.connect()?;
    let found = super::lookup(&zk, &globs, common.indices.as_ref())?;
    drop(zk);
    let (path, client) = control::control_path("signal", &common);
    let answers =
        super::fan_out(&found.pods, common.parallel, |pod| super::post(pod, &path, &body, client));
    let pairs: Vec<_> = found.pods.iter().zip(&answers).collect();
    let tally_of = |glob: &Glob| {
        let mut tally = Tally::default();
        for (pod, answer) in pairs.iter().filter(|(p, _)| glob.matches(&p.cluster)) {
            tally.add(pod, control::explain(answer));
        }
        tally
    };
    if common.json {
        let mut map = Map::new();
        for (pod, answer) in &pairs {
            let value = match answer.ok() {
                Some(reply) => reply.clone(),
                None => json!({"error": control::explain(answer)}),
            };
            map.insert(pod.key(), value);
        }
        output::emit(&output::structured(&Value::Object(map)));
    } else {
        let mut out = String::new();
        for glob in &globs {
            let tally = tally_of(glob);
            if tally.total == 0 {
                out += &output::no_pods(&glob.0);
                continue;
            }
            let entries: Vec<String> = pairs
                .iter()
                .filter(|(p, _)| glob.matches(&p.cluster))
                .filter_map(|(pod, a)| {
                    Some(format!("{}\n{}\n", pod.key(), output::pretty(a.ok()?)))
                })
                .collect();
            out += &output::header(&glob.0, &tally);
            if !entries.is_empty() {
                out += "\n- ";
                out += &entries.join("\n- ");
                out += "\n";
            }
            output::failures(&mut out, &tally);
        }
        output::emit(&out);
    }
    let mut all = Tally::default();
    for (pod, answer) in &pairs {
        all.add(pod, control::explain(answer));
    }
    let code = super::finish(&common, &all, &found.skipped);
    let empty: Vec<&str> =
        globs.iter().filter(|g| tally_of(g).total == 0).map(|g| g.0.as_str()).collect();
    if !empty.is_empty() {
        eprintln!("no pods matched {}", empty.join(", "));
        return Ok(ExitCode::from(1));
    }
    Ok(code)
}
