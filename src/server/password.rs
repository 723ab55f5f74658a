//! New passwords for `qftp-server user add` and `user passwd`: prompted
//! twice without echo, or read from standard input. Hashing them is the
//! library's work.

use std::io::{self, BufRead};

use anyhow::{Context as _, Result, bail};

use super::cli::PasswordStrength;

/// A new password, from standard input or prompted twice without echo;
/// empty passwords are refused, and short ones unless `strength` allows
/// them.
pub(crate) fn read_new(from_stdin: bool, strength: PasswordStrength) -> Result<String> {
    let password = if from_stdin {
        read_line(&mut io::stdin().lock())?
    } else {
        prompt_twice()?
    };
    check_strength(&password, strength)?;
    Ok(password)
}

/// Refuses an empty password always, and one of fewer than
/// `min_password_length` characters unless `allow_weak`.
fn check_strength(password: &str, strength: PasswordStrength) -> Result<()> {
    if password.is_empty() {
        bail!("empty passwords are not allowed");
    }
    let length = password.chars().count();
    if length < strength.min_password_length && !strength.allow_weak {
        bail!(
            "the password has {length} characters, fewer than the minimum of {} \
             (--min-password-length; --allow-weak accepts it anyway)",
            strength.min_password_length
        );
    }
    Ok(())
}

/// The first line of `reader`, without its line ending.
fn read_line(reader: &mut impl BufRead) -> Result<String> {
    let mut line = String::new();
    reader
        .read_line(&mut line)
        .context("cannot read the password from standard input")?;
    let line = line.strip_suffix('\n').unwrap_or(&line);
    let line = line.strip_suffix('\r').unwrap_or(line);
    Ok(line.to_owned())
}

fn prompt_twice() -> Result<String> {
    let first = rpassword::prompt_password("New password: ")
        .context("cannot read the password from the terminal (use --password-stdin to pipe it)")?;
    let second = rpassword::prompt_password("Repeat password: ")
        .context("cannot read the password from the terminal")?;
    if first != second {
        bail!("the passwords do not match");
    }
    Ok(first)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_passwords_need_allow_weak() {
        let strength = PasswordStrength {
            min_password_length: 8,
            allow_weak: false,
        };
        assert!(check_strength("seven77", strength).is_err());
        assert!(check_strength("eight888", strength).is_ok());
        // Characters, not bytes.
        assert!(check_strength("ééééééé", strength).is_err());
        let weak = PasswordStrength {
            allow_weak: true,
            ..strength
        };
        assert!(check_strength("pw", weak).is_ok());
        assert!(check_strength("", weak).is_err());
    }

    #[test]
    fn password_line_loses_its_line_ending() {
        assert_eq!(
            read_line(&mut "secret\nmore\n".as_bytes()).unwrap(),
            "secret"
        );
        assert_eq!(read_line(&mut "secret\r\n".as_bytes()).unwrap(), "secret");
        assert_eq!(
            read_line(&mut "no newline".as_bytes()).unwrap(),
            "no newline"
        );
        assert_eq!(read_line(&mut " spaced \n".as_bytes()).unwrap(), " spaced ");
        assert_eq!(read_line(&mut "".as_bytes()).unwrap(), "");
    }
}
