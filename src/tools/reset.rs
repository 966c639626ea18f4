//! `ocho reset`: `/reset` — each pod drops and re-creates its ZooKeeper registration (its
//! coordinator restarts, leadership may move); the managed process is untouched.

use std::process::ExitCode;

use super::{control, tool_args};
use crate::error::Result;

tool_args! {
    /// re-register pods in zookeeper; their process is untouched
    #[argh(
        subcommand,
        name = "reset",
        note = "Posts /reset (the pod answers at once). Needs --force unless -i picks pods.\n\
                A glob matching no pod is a failure.\n\
                Text: per glob `<GLOB> -> P% replies, N pods reset (T pods total)`, then the pods that did not answer.\n\
                JSON (-j): {{\"<glob>\": {{\"ok\": bool, \"reset\": [seq, …], \"failed\": {{\"<pod>\": \"<reason>\"}}}}, …}}"
    )]
    pub struct Args {
        /// cluster globs on <namespace>.<cluster> (a bare name also matches *.name)
        #[argh(positional)]
        pub clusters: Vec<String>,
        /// act on every pod of the globs (without -i)
        #[argh(switch)]
        pub force: bool,
    }
    timeout = "10.0", "seconds each pod has to answer (default 10)";
}

pub fn run(args: Args) -> Result<ExitCode> {
    let common = args.common()?;
    common.require_force("reset", args.force)?;
    let globs = super::Glob::required("reset", &args.clusters)?;
    let zk = common.connect()?;
    let found = super::lookup(&zk, &globs, common.indices.as_ref())?;
    drop(zk);
    let answers = super::fan_out(&found.pods, common.parallel, |pod| {
        super::post(pod, "/reset", b"", common.timeout)
    });
    Ok(control::report(&common, &globs, &found.pods, &answers, "reset", &found.skipped))
}
