//! Confinement of the files a tool reads because of its arguments (definitions, their globs,
//! `-o` overrides, `ping` payloads). When the portal runs a tool it sets [`ENV`] to the request's
//! directory (the tool's working directory, which holds the request's uploads); a client controls
//! the tool's argv only, never its environment. Then every argument path must resolve beneath
//! that directory: absolute paths, `..` that climbs out of it and symbolic links that lead out of
//! it are refused with a message naming the argument, before the file is opened. Resolution is
//! done by the kernel (`openat2` with `RESOLVE_BENEATH`, Linux 5.6+) relative to a descriptor of
//! the directory, so no check-then-open race exists; without `openat2` nothing is read (fail
//! closed). Without [`ENV`] (a tool run directly), files are read as any Unix tool reads them.

use std::ffi::OsString;
use std::fs::File;
use std::os::fd::OwnedFd;
use std::path::{Component, Path};

use nix::errno::Errno;
use nix::fcntl::{OFlag, OpenHow, ResolveFlag, openat2};
use nix::sys::stat::{Mode, SFlag};

use crate::error::{Error, Result};

/// Environment variable through which the portal confines a tool to a directory.
pub const ENV: &str = "OCHO_CONFINE";

/// Opens for reading the file that argument `what` (e.g. `"payload"`) names. Confined, `path`
/// must resolve beneath the confinement directory and be a regular file; otherwise the error
/// names the argument and says why, and the file is not opened.
pub fn open(what: &str, path: &Path) -> Result<File> {
    open_in(root(what)?.as_ref(), what, path)
}

fn open_in(root: Option<&OwnedFd>, what: &str, path: &Path) -> Result<File> {
    let Some(root) = root else {
        return File::open(path).map_err(|e| cannot_open(what, path, e));
    };
    let fd = beneath(root, what, path, OFlag::O_RDONLY | OFlag::O_NOCTTY | OFlag::O_NONBLOCK)?;
    let stat = nix::sys::stat::fstat(&fd).map_err(|e| cannot_open(what, path, e.into()))?;
    if SFlag::from_bits_truncate(stat.st_mode) & SFlag::S_IFMT != SFlag::S_IFREG {
        return Err(refused(what, path, "not a regular file"));
    }
    // O_NONBLOCK only kept a FIFO from blocking the open; it changes nothing for a regular file.
    Ok(File::from(fd))
}

/// Names of the regular files and symbolic links in the directory that argument `what` names
/// (what a glob may match), unsorted. Confined, the directory must resolve beneath the
/// confinement directory; the entries themselves are checked when they are [`open`]ed.
pub fn files_in(what: &str, dir: &Path) -> Result<Vec<OsString>> {
    files_in_root(root(what)?.as_ref(), what, dir)
}

fn files_in_root(root: Option<&OwnedFd>, what: &str, dir: &Path) -> Result<Vec<OsString>> {
    let Some(root) = root else {
        let entries = std::fs::read_dir(dir).map_err(|e| Error::io("list", dir, e))?;
        return Ok(entries
            .filter_map(|e| e.ok())
            .filter(|e| e.file_type().is_ok_and(|t| t.is_file() || t.is_symlink()))
            .map(|e| e.file_name())
            .collect());
    };
    let fd = beneath(root, what, dir, OFlag::O_RDONLY | OFlag::O_DIRECTORY)?;
    let mut listing = nix::dir::Dir::from_fd(fd).map_err(|e| Error::io("list", dir, e.into()))?;
    let mut names = Vec::new();
    for entry in listing.iter() {
        let entry = entry.map_err(|e| Error::io("list", dir, e.into()))?;
        use std::os::unix::ffi::OsStrExt;
        let name = std::ffi::OsStr::from_bytes(entry.file_name().to_bytes());
        if name == "." || name == ".." {
            continue;
        }
        // d_type is all this needs; a file system that does not fill it in lists nothing
        // matchable, which is refused later as "no file matches" rather than guessed.
        if matches!(entry.file_type(), Some(nix::dir::Type::File) | Some(nix::dir::Type::Symlink)) {
            names.push(name.to_os_string());
        }
    }
    Ok(names)
}

/// A descriptor of the confinement directory, or `None` when not confined.
fn root(what: &str) -> Result<Option<OwnedFd>> {
    let Some(dir) = std::env::var_os(ENV) else { return Ok(None) };
    let flags = OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC;
    nix::fcntl::open(Path::new(&dir), flags, Mode::empty()).map(Some).map_err(|e| {
        Error::Failed(format!(
            "{what}: cannot open the confinement directory {} (${ENV}): {e}; nothing is read",
            Path::new(&dir).display()
        ))
    })
}

/// Opens `path` relative to `root` with `flags`, refusing whatever leaves `root`.
fn beneath(root: &OwnedFd, what: &str, path: &Path, flags: OFlag) -> Result<OwnedFd> {
    lexically_beneath(path).map_err(|why| refused(what, path, why))?;
    let how = OpenHow::new()
        .flags(flags | OFlag::O_CLOEXEC)
        .resolve(ResolveFlag::RESOLVE_BENEATH | ResolveFlag::RESOLVE_NO_MAGICLINKS);
    openat2(root, path, how).map_err(|errno| match errno {
        Errno::EXDEV | Errno::ELOOP => refused(
            what,
            path,
            "it resolves outside the request's directory (through a symbolic link)",
        ),
        Errno::ENOSYS => Error::Failed(format!(
            "{what} {}: this system cannot confine file access (openat2 unavailable: \
                 Linux 5.6 or later needed); nothing is read",
            excerpt(path)
        )),
        errno => cannot_open(what, path, errno.into()),
    })
}

/// Refuses absolute paths and `..` that climb above the starting directory, whether or not the
/// components exist (the kernel would say "no such file" for `a/../../x` when `a` is missing).
fn lexically_beneath(path: &Path) -> std::result::Result<(), &'static str> {
    let mut depth = 0usize;
    for part in path.components() {
        match part {
            Component::RootDir | Component::Prefix(_) => {
                return Err("an absolute path; a tool run by the portal reads only the \
                            request's uploads (give an upload's name)");
            }
            Component::CurDir => {}
            Component::ParentDir => {
                depth = depth.checked_sub(1).ok_or(
                    "it climbs out of the request's directory (..); a tool run by the portal \
                     reads only the request's uploads",
                )?;
            }
            Component::Normal(_) => depth += 1,
        }
    }
    Ok(())
}

fn cannot_open(what: &str, path: &Path, e: std::io::Error) -> Error {
    Error::Failed(format!("open {what} {}: {e}", path.display()))
}

fn refused(what: &str, path: &Path, why: &str) -> Error {
    Error::Usage(format!("{what} {} refused: {why}", excerpt(path)))
}

/// A path as shown in messages: quoted, control characters escaped, at most 120 characters.
fn excerpt(path: &Path) -> String {
    let text = path.to_string_lossy();
    let mut shown: String = text.chars().take(120).collect();
    if text.chars().count() > 120 {
        shown.push('…');
    }
    format!("{shown:?}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lexical_check_refuses_absolute_paths_and_climbing_out() {
        assert!(lexically_beneath(Path::new("a.yml")).is_ok());
        assert!(lexically_beneath(Path::new("./a/../b.yml")).is_ok());
        assert!(lexically_beneath(Path::new("/etc/passwd")).unwrap_err().contains("absolute"));
        assert!(lexically_beneath(Path::new("../x")).unwrap_err().contains(".."));
        assert!(lexically_beneath(Path::new("a/../../x")).unwrap_err().contains(".."));
        assert!(lexically_beneath(Path::new("a/./../b/../../x")).is_err());
    }

    fn dir_fd(path: &Path) -> OwnedFd {
        nix::fcntl::open(path, OFlag::O_PATH | OFlag::O_DIRECTORY, Mode::empty()).unwrap()
    }

    #[test]
    fn symlinks_may_stay_inside_but_not_lead_out() {
        let outside = tempfile::tempdir().unwrap();
        std::fs::write(outside.path().join("secret"), "s3cret\n").unwrap();
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::write(root.join("a.yml"), "cluster: a\n").unwrap();
        std::fs::create_dir(root.join("sub")).unwrap();
        std::os::unix::fs::symlink("a.yml", root.join("inside.yml")).unwrap();
        std::os::unix::fs::symlink("../a.yml", root.join("sub/up.yml")).unwrap();
        std::os::unix::fs::symlink(outside.path().join("secret"), root.join("abs.yml")).unwrap();
        let name = outside.path().file_name().unwrap().to_string_lossy().into_owned();
        std::os::unix::fs::symlink(format!("../{name}/secret"), root.join("rel.yml")).unwrap();
        std::os::unix::fs::symlink(outside.path(), root.join("out")).unwrap();
        let fd = dir_fd(root);
        let read = |p: &str| {
            open_in(Some(&fd), "definition", Path::new(p))
                .map(|f| std::io::read_to_string(f).unwrap())
        };
        assert_eq!(read("inside.yml").unwrap(), "cluster: a\n");
        assert_eq!(read("sub/up.yml").unwrap(), "cluster: a\n");
        assert_eq!(read("sub/../a.yml").unwrap(), "cluster: a\n");
        for bad in ["abs.yml", "rel.yml", "out/secret"] {
            let err = crate::error::chain(&read(bad).unwrap_err());
            assert!(err.contains("definition") && err.contains("symbolic link"), "{bad}: {err}");
            assert!(!err.contains("s3cret"), "{err}");
        }
        let err = crate::error::chain(&read("sub").unwrap_err());
        assert!(err.contains("not a regular file"), "{err}");
        nix::unistd::mkfifo(&root.join("fifo"), Mode::S_IRWXU).unwrap();
        let err = crate::error::chain(&read("fifo").unwrap_err());
        assert!(err.contains("not a regular file"), "{err}");
        let err = files_in_root(Some(&fd), "glob", Path::new("out")).unwrap_err();
        assert!(crate::error::chain(&err).contains("symbolic link"));
        let mut names = files_in_root(Some(&fd), "glob", Path::new(".")).unwrap();
        names.sort();
        assert_eq!(names, ["a.yml", "abs.yml", "inside.yml", "out", "rel.yml"].map(OsString::from));
    }
}
