//! Where the PostgreSQL tests find a server, so that `cargo test` works on any machine that has
//! PostgreSQL installed, running or not:
//!
//! 1. `STOCKROOM_TEST_POSTGRES` (e.g. `postgres://user@host:5432`), when set;
//! 2. else a server answering on 127.0.0.1:5432 (user `postgres`, trust authentication);
//! 3. else a throwaway cluster made with the system's own `initdb` and `postgres` in a
//!    temporary folder, on a free port, for this test run only (it stops, and its folder goes,
//!    when the test process ends);
//! 4. else every PostgreSQL test fails at once with one message that says how to fix it.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

const DEFAULT_SERVER: &str = "postgres://postgres@127.0.0.1:5432";

/// The URL (without a database) of the server the PostgreSQL tests use.
pub fn server_url() -> String {
    static SERVER: OnceLock<Result<String, String>> = OnceLock::new();
    SERVER
        .get_or_init(find_or_start)
        .clone()
        .unwrap_or_else(|message| panic!("{message}"))
}

fn find_or_start() -> Result<String, String> {
    if let Ok(url) = std::env::var("STOCKROOM_TEST_POSTGRES") {
        return Ok(url);
    }
    let default: SocketAddr = "127.0.0.1:5432".parse().expect("an address");
    if TcpStream::connect_timeout(&default, Duration::from_millis(300)).is_ok() {
        return Ok(DEFAULT_SERVER.to_owned());
    }
    let Some(bin) = postgres_binaries() else {
        return Err(
            "The PostgreSQL tests need PostgreSQL: no server answers on 127.0.0.1:5432 and no \
             `initdb`/`postgres` binaries were found to start a throwaway one. Install PostgreSQL \
             (e.g. `apt-get install postgresql`), or point STOCKROOM_TEST_POSTGRES at a server \
             (`postgres://user@host:port`), or run only the SQLite tests with `cargo test sqlite`."
                .to_owned(),
        );
    };
    start_throwaway_cluster(&bin).map_err(|error| {
        format!(
            "cannot start a throwaway PostgreSQL from {}: {error}",
            bin.display()
        )
    })
}

/// The folder holding `initdb` and `postgres`: from `pg_config`, or the newest Debian-style
/// `/usr/lib/postgresql/<version>/bin`.
fn postgres_binaries() -> Option<PathBuf> {
    let has_both = |dir: &Path| dir.join("initdb").is_file() && dir.join("postgres").is_file();
    if let Ok(output) = Command::new("pg_config").arg("--bindir").output() {
        let dir = PathBuf::from(String::from_utf8_lossy(&output.stdout).trim());
        if output.status.success() && has_both(&dir) {
            return Some(dir);
        }
    }
    let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|entry| Some(entry.ok()?.path().join("bin")))
        .filter(|dir| has_both(dir))
        .collect();
    versions.sort_by_key(|dir| {
        dir.parent()
            .and_then(Path::file_name)
            .and_then(|name| name.to_str()?.parse::<u32>().ok())
            .unwrap_or(0)
    });
    versions.pop()
}

/// PostgreSQL refuses to run as root: then the cluster runs as the `postgres` user.
fn running_as_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|output| String::from_utf8_lossy(&output.stdout).trim() == "0")
}

fn start_throwaway_cluster(bin: &Path) -> Result<String, String> {
    let folder = std::env::temp_dir().join(format!("stockroom-test-pg-{}", std::process::id()));
    let data = folder.join("data");
    std::fs::create_dir_all(&folder).map_err(|error| error.to_string())?;
    let as_root = running_as_root();
    let command = |program: &Path| {
        if as_root {
            let mut command = Command::new("runuser");
            command.args(["-u", "postgres", "--"]).arg(program);
            command
        } else {
            Command::new(program)
        }
    };
    if as_root {
        let chown = Command::new("chown")
            .args(["-R", "postgres"])
            .arg(&folder)
            .status()
            .map_err(|error| error.to_string())?;
        if !chown.success() {
            return Err("cannot hand the cluster's folder to the postgres user".to_owned());
        }
    }
    let initdb = command(&bin.join("initdb"))
        .arg("-D")
        .arg(&data)
        .args(["-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output()
        .map_err(|error| error.to_string())?;
    if !initdb.status.success() {
        return Err(String::from_utf8_lossy(&initdb.stderr).into_owned());
    }
    let port = TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map_err(|error| error.to_string())?
        .port();
    // A watchdog shell runs the server, stops it when this test process has gone, and removes
    // the folder.
    let script = r#"
        "$1" -D "$2" -p "$3" -k "$4" -c listen_addresses=127.0.0.1 -c fsync=off \
             -c synchronous_commit=off -c max_connections=500 >"$4/log" 2>&1 &
        server=$!
        while [ -d "/proc/$5" ] && kill -0 "$server" 2>/dev/null; do sleep 1; done
        kill -INT "$server" 2>/dev/null; wait "$server"; rm -rf "$4"
    "#;
    let mut watchdog = command(Path::new("/bin/sh"));
    watchdog
        .args(["-c", script, "sh"])
        .arg(bin.join("postgres"))
        .arg(&data)
        .arg(port.to_string())
        .arg(&folder)
        .arg(std::process::id().to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|error| error.to_string())?;
    let address: SocketAddr = format!("127.0.0.1:{port}").parse().expect("an address");
    let ready = || {
        let pg_isready = bin.join("pg_isready");
        if pg_isready.is_file() {
            Command::new(pg_isready)
                .args(["-q", "-h", "127.0.0.1", "-p", &port.to_string()])
                .status()
                .is_ok_and(|status| status.success())
        } else {
            TcpStream::connect_timeout(&address, Duration::from_millis(200)).is_ok()
        }
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    while !ready() {
        if Instant::now() > deadline {
            let log = std::fs::read_to_string(folder.join("log")).unwrap_or_default();
            return Err(format!("the server did not start within 30 s: {log}"));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    eprintln!(
        "PostgreSQL tests: no server on 127.0.0.1:5432, started a throwaway one on port {port}"
    );
    Ok(format!("postgres://postgres@127.0.0.1:{port}"))
}
