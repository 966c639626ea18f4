//! The ZooKeeper JVM as a command: which `java`, which classpath, which flags. Started directly
//! (no `zkServer.sh`, no shell) with `QuorumPeerMain`, the only main class that runs autopurge.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::error::{Error, Result};

/// Debian's `zookeeper` package: the jar's manifest lists the rest of the closure by absolute
/// path, and slf4j-simple sends ZooKeeper's log to stderr (without a binding it logs nothing).
pub const DEBIAN_CLASSPATH: &str = "/usr/share/java/zookeeper.jar:/usr/share/java/slf4j-simple.jar";

/// The main class; `ZooKeeperServerMain` would silently ignore the autopurge settings.
pub const MAIN_CLASS: &str = "org.apache.zookeeper.server.quorum.QuorumPeerMain";

/// How to start the JVM.
#[derive(Debug, Clone, PartialEq)]
pub struct Jvm {
    pub java: PathBuf,
    pub classpath: String,
    pub heap: String,
}

/// Finds `java`: an explicit path, else `$JAVA_HOME/bin/java`, else the first `java` on `PATH`.
pub fn find_java(explicit: Option<&str>) -> Result<PathBuf> {
    if let Some(path) = explicit.filter(|p| !p.is_empty()) {
        return Ok(PathBuf::from(path));
    }
    if let Some(home) = std::env::var_os("JAVA_HOME").filter(|h| !h.is_empty()) {
        let java = Path::new(&home).join("bin/java");
        if java.is_file() {
            return Ok(java);
        }
        return Err(Error::Failed(format!(
            "$JAVA_HOME is set but {} does not exist",
            java.display()
        )));
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path).map(|dir| dir.join("java")).find(|java| java.is_file()).ok_or_else(
        || {
            Error::Failed(
                "java not found: set JAVA_HOME or put java on PATH \
             (Debian: apt-get install openjdk-17-jre-headless, or run 'make deps')"
                    .into(),
            )
        },
    )
}

/// Resolves `--zk-classpath`: a directory is an upstream distribution (`<dir>/lib/*.jar` plus any
/// `<dir>/*.jar`); anything else is a `:`-separated list of jars that must all exist.
pub fn resolve_classpath(spec: &str) -> Result<String> {
    let dir = Path::new(spec);
    if dir.is_dir() {
        let mut jars = Vec::new();
        for sub in [dir.join("lib"), dir.to_path_buf()] {
            let Ok(entries) = std::fs::read_dir(&sub) else { continue };
            for entry in entries.flatten() {
                let path = entry.path();
                if path.extension().is_some_and(|e| e == "jar") {
                    jars.push(path.display().to_string());
                }
            }
        }
        jars.sort();
        if !jars.iter().any(|j| j.contains("zookeeper")) {
            return Err(Error::Failed(format!(
                "{spec} holds no zookeeper jar (expected an upstream distribution with lib/*.jar)"
            )));
        }
        return Ok(jars.join(":"));
    }
    for jar in spec.split(':').filter(|j| !j.is_empty()) {
        if !Path::new(jar).is_file() {
            let hint = if spec == DEBIAN_CLASSPATH {
                ": install Debian package zookeeper (make deps)"
            } else {
                ""
            };
            return Err(Error::Failed(format!("{jar} missing{hint}")));
        }
    }
    Ok(spec.to_string())
}

/// Working directory of the JVM: never the data directory, so nothing the JVM writes relative
/// to its cwd (a crash report, a core file) lands on the data volume. In the image `/` is
/// read-only.
pub const JVM_CWD: &str = "/";

/// The command line of the JVM for a rendered `zoo.cfg`. A fatal error report (`hs_err`) goes
/// to stderr, so it reaches init's log as `zookeeper: ` lines instead of a file.
/// `trust_empty_snapshot` lets ZooKeeper replay its logs when no valid snapshot is left (it
/// refuses to start otherwise); init sets it only after quarantining every snapshot.
pub fn command(jvm: &Jvm, zoo_cfg: &Path, trust_empty_snapshot: bool) -> Command {
    let mut cmd = Command::new(&jvm.java);
    if trust_empty_snapshot {
        cmd.arg("-Dzookeeper.snapshot.trust.empty=true");
    }
    cmd.current_dir(JVM_CWD)
        .arg(format!("-Xmx{}", jvm.heap))
        .arg("-XX:+UseSerialGC")
        .arg("-XX:+ExitOnOutOfMemoryError")
        .arg("-XX:+ErrorFileToStderr")
        .arg("-cp")
        .arg(&jvm.classpath)
        .arg(MAIN_CLASS)
        .arg(zoo_cfg);
    cmd
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_jvm_runs_quorum_peer_main_with_a_bounded_heap() {
        let jvm = Jvm {
            java: "/opt/jre/bin/java".into(),
            classpath: "a.jar:b.jar".into(),
            heap: "256m".into(),
        };
        let cmd = command(&jvm, Path::new("/data/zoo.cfg"), false);
        assert_eq!(cmd.get_program(), "/opt/jre/bin/java");
        assert_eq!(cmd.get_current_dir(), Some(Path::new("/")));
        let args: Vec<_> = cmd.get_args().map(|a| a.to_str().unwrap()).collect();
        assert_eq!(
            args,
            [
                "-Xmx256m",
                "-XX:+UseSerialGC",
                "-XX:+ExitOnOutOfMemoryError",
                "-XX:+ErrorFileToStderr",
                "-cp",
                "a.jar:b.jar",
                MAIN_CLASS,
                "/data/zoo.cfg"
            ]
        );
        let trusting = command(&jvm, Path::new("/data/zoo.cfg"), true);
        assert_eq!(
            trusting.get_args().next().and_then(|a| a.to_str()),
            Some("-Dzookeeper.snapshot.trust.empty=true")
        );
    }

    #[test]
    fn an_upstream_distribution_directory_gives_its_lib_jars() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("lib")).unwrap();
        for jar in ["lib/zookeeper-3.8.4.jar", "lib/zookeeper-jute-3.8.4.jar", "lib/README.txt"] {
            std::fs::write(dir.path().join(jar), "").unwrap();
        }
        let cp = resolve_classpath(dir.path().to_str().unwrap()).unwrap();
        let lib = dir.path().join("lib");
        assert_eq!(
            cp,
            format!("{0}/zookeeper-3.8.4.jar:{0}/zookeeper-jute-3.8.4.jar", lib.display())
        );
    }

    #[test]
    fn a_missing_jar_is_named() {
        let err = resolve_classpath("/nonexistent/zookeeper.jar").unwrap_err().to_string();
        assert!(err.contains("/nonexistent/zookeeper.jar missing"), "{err}");
        let empty = tempfile::tempdir().unwrap();
        assert!(resolve_classpath(empty.path().to_str().unwrap()).is_err());
    }
}
