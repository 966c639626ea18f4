//! `ocho off`: `/control/off` — stop each pod's process gracefully; the pods stay up.

use std::process::ExitCode;

use super::{control, tool_args};
use crate::error::Result;

tool_args! {
    /// switch pods off: stop their process, keep the pods
    #[argh(
        subcommand,
        name = "off",
        example = "{command_name} web -i 2\n    stop the process of pod #2 of web; the pod stays",
        example = "{command_name} --force 'default.*'\n    stop the processes of every cluster of namespace default",
        note = "Posts /control/off/<t> (the pod's own timeout is -t; the client waits 1.25 t + 1 s).\n\
                Needs --force unless -i picks pods. A glob matching no pod is a failure.\n\
                Text: per glob `<GLOB> -> P% replies, N pods off (T pods total)`, then the pods that did not \
                answer (408: still queued on the pod; the stop goes on).\n\
                JSON (-j): {{\"<glob>\": {{\"ok\": bool, \"off\": [seq, …], \"failed\": {{\"<pod>\": \"<reason>\"}}, \"refused\": {{\"<pod>\": \"<reason>\"}}}}, …}}"
    )]
    pub struct Args {
        /// cluster globs on <namespace>.<cluster> (a bare name also matches *.name)
        #[argh(positional)]
        pub clusters: Vec<String>,
        /// act on every pod of the globs (without -i)
        #[argh(switch)]
        pub force: bool,
    }
    timeout = "60.0", "seconds the pod may take to stop its process (default 60)";
}

pub fn run(args: Args) -> Result<ExitCode> {
    let common = args.common()?;
    common.require_force("off", args.force)?;
    let globs = super::Glob::required("off", &args.clusters)?;
    let zk = common.connect()?;
    let found = super::lookup(&zk, &globs, common.indices.as_ref())?;
    drop(zk);
    let (path, client) = control::control_path("off", &common);
    let answers =
        super::fan_out(&found.pods, common.parallel, |pod| super::post(pod, &path, b"", client));
    let verdicts: Vec<_> = answers.iter().map(control::verdict).collect();
    Ok(control::report(&common, &globs, &found.pods, &verdicts, "off", &found.skipped))
}
