//! Questions asked on the terminal: the password at login and whether to
//! trust an unknown certificate. Nothing here talks to the server.

use std::io::{IsTerminal as _, Write as _};

use anyhow::Context as _;
use qftp_transport::Fingerprint;

/// Reads the password, from the first line of standard input when
/// `from_stdin`, else from the terminal without echo.
pub fn read_password(from_stdin: bool, user: &str, host: &str) -> anyhow::Result<String> {
    let password = if from_stdin {
        let mut line = String::new();
        std::io::stdin()
            .read_line(&mut line)
            .context("reading the password from standard input")?;
        line.trim_end_matches(['\n', '\r']).to_owned()
    } else if !std::io::stdin().is_terminal() {
        anyhow::bail!(
            "no terminal to ask for the password of {user}@{host}; give it on standard input with --password-stdin"
        );
    } else {
        rpassword::prompt_password(format!("{user}@{host}'s password: ")).context(
            "no terminal to read the password from; give it on standard input with --password-stdin",
        )?
    };
    if password.is_empty() {
        anyhow::bail!("empty password");
    }
    Ok(password)
}

/// Asks on the terminal whether to trust an unknown certificate.
pub fn ask_to_trust(host: &str, fingerprint: Fingerprint) -> anyhow::Result<bool> {
    if !std::io::stdin().is_terminal() {
        anyhow::bail!(
            "the certificate of {host} is unknown ({fingerprint}); \
             check it with the server's admin (`qftp-server cert fingerprint`) and pass \
             --fingerprint {fingerprint}, or --trust to accept it"
        );
    }
    let mut stderr = std::io::stderr();
    let _ = write!(
        stderr,
        "The authenticity of {host} can't be established.\n\
         Certificate fingerprint is {fingerprint}.\n\
         Are you sure you want to continue connecting (yes/no)? "
    );
    let _ = stderr.flush();
    let mut answer = String::new();
    std::io::stdin()
        .read_line(&mut answer)
        .context("reading the answer from standard input")?;
    Ok(matches!(
        answer.trim().to_ascii_lowercase().as_str(),
        "y" | "yes"
    ))
}
