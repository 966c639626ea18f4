//! `ocho exec`: Ochothon's verb. Posts `/exec` with `X-Shell: <tag> <args…>` (and the named
//! uploads as `multipart/form-data`) to each selected pod, which runs one of the tools it
//! registered (Ochopod 1.0.7, `ocho pod --tool`), and shows each pod's exit code and output.

use std::io::Read;
use std::path::Path;
use std::process::ExitCode;

use serde_json::{Map, Value, json};

use super::{Answer, Glob, Pod, Tally, Verdict, output, tool_args};
use crate::error::{Error, Result};
use crate::http::Request;

/// Largest sum of the uploads forwarded (the agent's body limit).
const MAX_UPLOADS: u64 = 4 * 1024 * 1024;

tool_args! {
    /// run one of the pods' own registered tools (/exec) and show its output
    #[argh(
        subcommand,
        name = "exec",
        example = "{command_name} -i 3 web shell uname -a\n    run the pod's registered tool `shell` with `uname -a` on pod #3 of web",
        example = "{command_name} --force --upload notes.txt web show notes.txt\n    send notes.txt to every pod of web and run their tool `show` on it",
        note = "Posts /exec with the header `X-Shell: TOOL ARGS…` (joined with single spaces, as the \
                pod splits them) to every selected pod; each --upload file goes along as a \
                multipart file part (through the portal: a file uploaded with the request). \
                A pod runs only the tools it registered (ocho pod --tool TAG=PROG, Ochopod 1.0.7 \
                tools); any other answers 404 and is reported as refused.\n\
                Needs --force unless -i picks pods. Exit 0 when the tool exited 0 on every pod \
                (or --min-replies of them); 1 otherwise.\n\
                Text: per glob `<GLOB> -> P% replies (T pods total) ->`, then `- <ns.cluster #seq> \
                (code N)` and its output lines, then the pods that failed.\n\
                JSON (-j): {{\"<ns.cluster #seq>\": {{\"code\": int, \"stdout\": [str, …]}}, …}}; a pod that \
                failed has {{\"error\": \"<reason>\"}} instead."
    )]
    pub struct Args {
        /// cluster glob on <namespace>.<cluster> (a bare name also matches *.name)
        #[argh(positional)]
        pub cluster: String,
        /// the pod's tool and its arguments
        #[argh(positional, greedy)]
        pub command: Vec<String>,
        /// act on every pod of the glob (without -i)
        #[argh(switch)]
        pub force: bool,
        /// a file to send along (repeatable), saved by its base name where the tool runs
        #[argh(option)]
        pub upload: Vec<String>,
    }
    timeout = "60.0", "seconds each pod's tool may take (default 60)";
}

/// The uploads as a `multipart/form-data` body and its content type.
fn multipart(files: &[String]) -> Result<Option<(String, Vec<u8>)>> {
    if files.is_empty() {
        return Ok(None);
    }
    let boundary = format!("ocho-exec-{:x}", std::process::id() as u64 ^ 0x9e37_79b9_7f4a_7c15);
    let mut body = Vec::new();
    for path in files {
        let name = Path::new(path)
            .file_name()
            .and_then(|n| n.to_str())
            .filter(|n| !n.contains(['"', '\r', '\n']))
            .ok_or_else(|| Error::Usage(format!("--upload {path:?}: not a plain file name")))?;
        let mut data = Vec::new();
        crate::confine::open("upload", Path::new(path))?
            .take(MAX_UPLOADS + 1)
            .read_to_end(&mut data)
            .map_err(|e| Error::io("read upload", path, e))?;
        if data.windows(boundary.len()).any(|w| w == boundary.as_bytes()) {
            return Err(Error::Usage(format!("--upload {path}: contains the part boundary")));
        }
        body.extend_from_slice(
            format!(
                "--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"; \
                 filename=\"{name}\"\r\nContent-Type: application/octet-stream\r\n\r\n"
            )
            .as_bytes(),
        );
        body.extend_from_slice(&data);
        body.extend_from_slice(b"\r\n");
        if body.len() as u64 > MAX_UPLOADS {
            return Err(Error::Usage(format!("uploads larger than {MAX_UPLOADS} bytes")));
        }
    }
    body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    Ok(Some((format!("multipart/form-data; boundary={boundary}"), body)))
}

fn post(
    pod: &Pod,
    line: &str,
    form: Option<&(String, Vec<u8>)>,
    timeout: std::time::Duration,
) -> Answer {
    let addr = match pod.control() {
        Ok(addr) => addr,
        Err(why) => return Answer::Failed(why),
    };
    let mut headers = vec![("X-Shell".to_string(), line.to_string())];
    if let Some((kind, _)) = form {
        headers.push(("Content-Type".into(), kind.clone()));
    }
    let body = form.map_or(&[][..], |(_, b)| b.as_slice());
    let request = Request { method: "POST", addr: &addr, path: "/exec", headers, body, timeout };
    match request.send(super::fire::MAX_REPLY) {
        Ok(reply) => match reply.json() {
            Some(body) => Answer::Json { status: reply.status, body },
            None => Answer::Failed(format!("HTTP {}, reply is not JSON", reply.status)),
        },
        Err(err) => Answer::Failed(crate::error::chain(&err)),
    }
}

/// What one pod's answer comes to: done only when its tool exited 0.
fn verdict(answer: &Answer) -> Verdict {
    match answer {
        Answer::Json { status: 200, body } => match body.get("code").and_then(Value::as_i64) {
            Some(0) => Verdict::Done,
            Some(code) => Verdict::Unfinished(format!("exit code {code}")),
            None => Verdict::Silent("HTTP 200 without a code".into()),
        },
        Answer::Json { status: 404, .. } => {
            Verdict::Refused("HTTP 404, the pod registered no such tool".into())
        }
        Answer::Json { status, .. } => Verdict::Refused(format!("HTTP {status}")),
        Answer::Failed(why) => Verdict::Silent(why.clone()),
    }
}

pub fn run(args: Args) -> Result<ExitCode> {
    let common = args.common()?;
    common.require_force("exec", args.force)?;
    let globs = Glob::required("exec", std::slice::from_ref(&args.cluster))?;
    if args.command.is_empty() {
        return Err(Error::Usage("exec needs a tool: ocho exec GLOB TOOL [ARGS…]".into()));
    }
    let line = args.command.join(" ");
    if line.chars().any(char::is_control) {
        return Err(Error::Usage("exec: the command may not hold control characters".into()));
    }
    let form = multipart(&args.upload)?;
    let zk = common.connect()?;
    let found = super::lookup(&zk, &globs, common.indices.as_ref())?;
    drop(zk);
    let answers = super::fan_out(&found.pods, common.parallel, |pod| {
        post(pod, &line, form.as_ref(), common.timeout)
    });
    let verdicts: Vec<Verdict> = answers.iter().map(verdict).collect();
    let mut tally = Tally::default();
    for (pod, v) in found.pods.iter().zip(&verdicts) {
        tally.judge(pod, v.clone());
    }
    if common.json {
        let mut map = Map::new();
        for ((pod, answer), v) in found.pods.iter().zip(&answers).zip(&verdicts) {
            let value = match (answer, v) {
                (Answer::Json { status: 200, body }, Verdict::Done | Verdict::Unfinished(_)) => {
                    json!({"code": body["code"], "stdout": body.get("stdout").cloned().unwrap_or(json!([]))})
                }
                (_, Verdict::Refused(why) | Verdict::Silent(why) | Verdict::Unfinished(why)) => {
                    json!({"error": why})
                }
                _ => json!({"error": "no reply"}),
            };
            map.insert(pod.key(), value);
        }
        output::emit(&output::structured(&Value::Object(map)));
    } else if tally.total == 0 {
        output::emit(&output::no_pods(&globs[0].0));
    } else {
        let mut out = output::header(&globs[0].0, &tally);
        for (pod, answer) in found.pods.iter().zip(&answers) {
            let Answer::Json { status: 200, body } = answer else { continue };
            out += &format!("\n- {} (code {})\n", pod.key(), body["code"]);
            for line in body["stdout"].as_array().into_iter().flatten() {
                out += &format!("  {}\n", line.as_str().unwrap_or_default());
            }
        }
        output::failures(&mut out, &tally);
        output::emit(&out);
    }
    let code = super::finish(&common, &tally, &found.skipped);
    if tally.total == 0 {
        eprintln!("no pods matched {}", globs[0].0);
        return Ok(ExitCode::from(1));
    }
    Ok(code)
}
