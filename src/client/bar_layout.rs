//! How one progress line fits the terminal: which columns it shows, how
//! wide the bar is, and how a file name too long for its column is
//! shortened in the middle. Pure arithmetic on widths; [`super::progress`]
//! turns a [`Columns`] into an indicatif template.
//!
//! Every line reads `NAME [BAR] PCT% BYTES/TOTAL ETA RATE`. The name and
//! the percentage are always there; the other parts are kept in the order
//! byte counts, bar, ETA, rate, each when it still fits, so on a narrow
//! terminal the rate goes first. A long name is shortened (down to 16
//! columns) to keep the byte counts; otherwise it keeps its width and the
//! bar goes before it is cut, so that a line never wraps.

/// `100%`.
pub const PERCENT_WIDTH: usize = 4;
/// `1023.99 MiB/1023.99 MiB`.
pub const BYTES_WIDTH: usize = 23;
/// `ETA 00:00:00`.
pub const ETA_WIDTH: usize = 12;
/// `1023.99 MiB/s`.
pub const RATE_WIDTH: usize = 13;
/// The narrowest bar worth drawing, between its brackets.
pub const BAR_MIN: usize = 10;
/// The widest bar, between its brackets.
pub const BAR_MAX: usize = 40;
/// A name column is not shortened below this to make room for the byte
/// counts; past that the counts go first.
const NAME_MIN: usize = 16;
/// What stands for the cut middle of a shortened name.
const ELLIPSIS: char = '…';

/// The parts of a progress line that fit, and their widths.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Columns {
    /// The width of the name column (names are padded or shortened to it).
    pub name: usize,
    /// The bar's width between its brackets, when there is room for one.
    pub bar: Option<usize>,
    /// Whether the byte counts are shown.
    pub bytes: bool,
    /// Whether the estimated time left is shown.
    pub eta: bool,
    /// Whether the rate is shown.
    pub rate: bool,
}

impl Columns {
    /// The columns of a line on a terminal `terminal_width` columns wide,
    /// for names at most `longest_name` columns wide.
    ///
    /// The last column of the terminal is left empty: some terminals wrap
    /// a line that fills it.
    pub fn fit(terminal_width: usize, longest_name: usize) -> Self {
        let width = terminal_width.saturating_sub(1);
        let room_for_name = width.saturating_sub(PERCENT_WIDTH + 1).max(1);
        let full_name = longest_name.max(1).min(room_for_name);
        // The name is shortened for the byte counts only down to NAME_MIN;
        // past that the counts go and the name keeps its width.
        let name_with_bytes = width.saturating_sub(PERCENT_WIDTH + 1 + BYTES_WIDTH + 1);
        let name = if full_name <= name_with_bytes || name_with_bytes < NAME_MIN {
            full_name
        } else {
            name_with_bytes
        };
        let mut used = name + 1 + PERCENT_WIDTH;
        let mut take = |part: usize| {
            let fits = used + 1 + part <= width;
            if fits {
                used += 1 + part;
            }
            fits
        };
        let bytes = take(BYTES_WIDTH);
        let bar = take(BAR_MIN + 2);
        let eta = take(ETA_WIDTH);
        let rate = take(RATE_WIDTH);
        let bar = bar.then(|| (BAR_MIN + width - used).min(BAR_MAX));
        Self {
            name,
            bar,
            bytes,
            eta,
            rate,
        }
    }

    /// How many terminal columns a line with these columns takes.
    pub fn line_width(&self) -> usize {
        let parts = [
            Some(self.name),
            self.bar.map(|bar| bar + 2),
            Some(PERCENT_WIDTH),
            self.bytes.then_some(BYTES_WIDTH),
            self.eta.then_some(ETA_WIDTH),
            self.rate.then_some(RATE_WIDTH),
        ];
        let shown: Vec<usize> = parts.into_iter().flatten().collect();
        shown.iter().sum::<usize>() + shown.len() - 1
    }
}

/// How many terminal columns `text` takes (wide characters count two).
pub fn display_width(text: &str) -> usize {
    console::measure_text_width(text)
}

/// `name` in exactly `width` columns: padded with spaces when shorter,
/// else shortened in the middle with `…`, keeping its start and its end
/// (where the extension is).
pub fn fit_name(name: &str, width: usize) -> String {
    let name_width = display_width(name);
    if name_width <= width {
        return format!("{name}{}", " ".repeat(width - name_width));
    }
    if width == 0 {
        return String::new();
    }
    // The ellipsis takes one column; the end gets the smaller half.
    let keep = width - 1;
    let tail_budget = keep / 2;
    let head_budget = keep - tail_budget;
    let characters: Vec<char> = name.chars().collect();
    let mut head = String::new();
    let mut head_width = 0;
    for character in &characters {
        let character_width = display_width(character.encode_utf8(&mut [0; 4]));
        if head_width + character_width > head_budget {
            break;
        }
        head.push(*character);
        head_width += character_width;
    }
    let mut tail = Vec::new();
    let mut tail_width = 0;
    for character in characters.iter().rev() {
        let character_width = display_width(character.encode_utf8(&mut [0; 4]));
        if tail_width + character_width > tail_budget {
            break;
        }
        tail.push(*character);
        tail_width += character_width;
    }
    let tail: String = tail.into_iter().rev().collect();
    let shortened = format!("{head}{ELLIPSIS}{tail}");
    // A wide character that did not fit leaves a column over: pad it.
    let padding = width.saturating_sub(head_width + 1 + tail_width);
    format!("{shortened}{}", " ".repeat(padding))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_wide_terminal_shows_everything_and_a_long_bar() {
        let columns = Columns::fit(200, 20);
        assert_eq!(columns.name, 20);
        assert_eq!(columns.bar, Some(BAR_MAX));
        assert!(columns.bytes && columns.eta && columns.rate);
        assert!(columns.line_width() < 200);
    }

    #[test]
    fn eighty_columns_keep_every_part() {
        let columns = Columns::fit(80, 10);
        assert!(columns.bytes && columns.eta && columns.rate);
        assert!(columns.bar.is_some_and(|bar| bar >= BAR_MIN));
        assert!(columns.line_width() <= 79, "{columns:?}");
        // A longer name costs the rate first.
        let columns = Columns::fit(80, 15);
        assert!(columns.bytes && columns.eta && !columns.rate);
        assert!(columns.bar.is_some_and(|bar| bar >= BAR_MIN));
        assert!(columns.line_width() <= 79, "{columns:?}");
    }

    #[test]
    fn sixty_columns_drop_rate_and_eta_but_keep_name_bar_and_percentage() {
        let columns = Columns::fit(60, 15);
        assert_eq!(columns.name, 15);
        assert!(columns.bytes);
        assert!(columns.bar.is_some());
        assert!(!columns.rate);
        assert!(columns.line_width() <= 59, "{columns:?}");
    }

    #[test]
    fn a_narrow_terminal_drops_the_bar_before_the_name() {
        let columns = Columns::fit(40, 15);
        assert_eq!(columns.name, 15);
        assert!(!columns.bytes);
        assert!(columns.bar.is_some());
        assert!(columns.line_width() <= 39, "{columns:?}");
        let columns = Columns::fit(40, 30);
        assert_eq!(columns.name, 30);
        assert_eq!(columns.bar, None);
        assert!(columns.line_width() <= 39, "{columns:?}");
        // Only a name wider than the terminal is shortened.
        let columns = Columns::fit(40, 100);
        assert_eq!(columns.name, 34);
    }

    #[test]
    fn a_long_name_is_shortened_to_keep_the_byte_counts() {
        let columns = Columns::fit(60, 100);
        assert!(columns.bytes);
        assert!(columns.name >= NAME_MIN && columns.name < 100);
        assert!(columns.line_width() <= 59, "{columns:?}");
    }

    #[test]
    fn every_width_fits_down_to_a_name_and_a_percentage() {
        for terminal in 8..=250 {
            for name in [1, 5, 16, 30, 200] {
                let columns = Columns::fit(terminal, name);
                assert!(
                    columns.line_width() < terminal,
                    "{terminal} columns, name {name}: {columns:?}"
                );
                assert!(columns.name >= 1);
            }
        }
    }

    #[test]
    fn short_names_are_padded() {
        assert_eq!(fit_name("a.txt", 8), "a.txt   ");
        assert_eq!(fit_name("a.txt", 5), "a.txt");
    }

    #[test]
    fn long_names_lose_their_middle_and_keep_the_extension() {
        let shortened = fit_name("holiday-photos-2024-august.tar.gz", 15);
        assert_eq!(shortened, "holiday….tar.gz");
        assert_eq!(display_width(&shortened), 15);
        assert!(fit_name("abcdef", 1) == "…");
    }

    #[test]
    fn wide_characters_are_counted_by_their_columns() {
        let shortened = fit_name("照片照片照片照片.jpg", 9);
        assert_eq!(shortened, "照片….jpg");
        assert_eq!(display_width(&shortened), 9);
        // A wide character that would cross the limit leaves a space.
        assert_eq!(fit_name("照片照片照片.jpg", 10), "照片….jpg ");
    }
}
