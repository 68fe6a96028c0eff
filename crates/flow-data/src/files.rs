//! Point files in and out, and the atomic write every saved file goes through.
//!
//! Reading validates everything a user can get wrong (non-numeric cells, ragged
//! rows, NaN or infinity, empty files, `.npy` of the wrong dtype or rank) and
//! names the file, line and column. Writing never leaves a half-written file.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use ndarray::Array2;
use ndarray_npy::{ReadNpyExt, WriteNpyExt};

use crate::{DataError, Result};

fn io_error(path: &Path) -> impl FnOnce(std::io::Error) -> DataError + '_ {
    move |source| DataError::Io { path: path.to_owned(), source }
}

/// Writes through `write` into a temporary file beside `path`, then renames it
/// over `path`: readers see the old file or the whole new one, never a part.
pub fn write_atomically<F>(path: &Path, write: F) -> Result<()>
where
    F: FnOnce(&mut dyn Write) -> std::io::Result<()>,
{
    if path.is_dir() {
        return Err(DataError::IsDirectory { path: path.to_owned() });
    }
    let temp = temp_path_for(path);
    being_written().push(temp.clone());
    let outcome = (|| {
        let file = File::create(&temp)?;
        let mut writer = BufWriter::new(file);
        write(&mut writer)?;
        writer.flush()?;
        writer.get_ref().sync_all()?;
        std::fs::rename(&temp, path)
    })();
    if outcome.is_err() {
        let _ = std::fs::remove_file(&temp);
    }
    being_written().retain(|p| p != &temp);
    outcome.map_err(io_error(path))
}

/// The temporary files [`write_atomically`] is writing now.
static BEING_WRITTEN: std::sync::Mutex<Vec<PathBuf>> = std::sync::Mutex::new(Vec::new());

fn being_written() -> std::sync::MutexGuard<'static, Vec<PathBuf>> {
    BEING_WRITTEN.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Removes the temporary files being written now: for a signal handler about to end the
/// process, so that an interrupted write leaves the output as it was and nothing beside it.
pub fn remove_files_being_written() {
    for temp in being_written().drain(..) {
        let _ = std::fs::remove_file(temp);
    }
}

/// `.NAME.PID.tmp` beside `path`, NAME cut short (at a character boundary) where the whole would
/// pass the 255 bytes a file name may have: an output named near that limit still writes.
fn temp_path_for(path: &Path) -> PathBuf {
    const NAME_MAX: usize = 255;
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let suffix = format!(".{}.tmp", std::process::id());
    let mut room = NAME_MAX - 1 - suffix.len();
    while room < name.len() && !name.is_char_boundary(room) {
        room -= 1;
    }
    path.with_file_name(format!(".{}{suffix}", &name[..room.min(name.len())]))
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Format {
    Csv,
    Npy,
}

fn format_of(path: &Path) -> Result<Format> {
    match path.extension().and_then(|e| e.to_str()).map(str::to_ascii_lowercase).as_deref() {
        Some("csv") => Ok(Format::Csv),
        Some("npy") => Ok(Format::Npy),
        _ => Err(DataError::Extension { path: path.to_owned() }),
    }
}

/// Checks that `path` can be written as a point file, before any work is done.
pub fn check_output_path(path: &Path) -> Result<()> {
    format_of(path)?;
    check_writable(path)
}

/// A data file's size and FNV-1a hash, `"N bytes, fnv1a HEX"`: recorded with a run, so that
/// resuming on a file whose contents changed is refused.
pub fn fingerprint(path: &Path) -> Result<String> {
    use std::io::Read;
    let mut file = File::open(path).map_err(io_error(path))?;
    let (mut hash, mut length, mut buffer) = (0xcbf2_9ce4_8422_2325u64, 0u64, vec![0u8; 1 << 16]);
    loop {
        let read = file.read(&mut buffer).map_err(io_error(path))?;
        if read == 0 {
            break;
        }
        length += read as u64;
        for &byte in &buffer[..read] {
            hash = (hash ^ u64::from(byte)).wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
    Ok(format!("{length} bytes, fnv1a {hash:016x}"))
}

/// Refuses an output that is one of the command's inputs (the same file, through links too), so
/// that writing it cannot destroy what was to be read.
pub fn check_not_an_input(out: &Path, inputs: &[&Path]) -> Result<()> {
    for &input in inputs {
        if same_file(out, input) {
            return Err(DataError::OutputIsInput { out: out.to_owned(), input: input.to_owned() });
        }
    }
    Ok(())
}

/// Whether two paths name one existing file (its device and inode on Unix).
fn same_file(a: &Path, b: &Path) -> bool {
    let (Ok(x), Ok(y)) = (std::fs::metadata(a), std::fs::metadata(b)) else {
        return false;
    };
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        x.dev() == y.dev() && x.ino() == y.ino()
    }
    #[cfg(not(unix))]
    {
        let _ = (x, y);
        matches!((a.canonicalize(), b.canonicalize()), (Ok(p), Ok(q)) if p == q)
    }
}

/// Checks, before any work is done, that a file can be created at `path`:
/// it is not a directory, its parent directory exists, and a file can be made there.
pub fn check_writable(path: &Path) -> Result<()> {
    if path.is_dir() {
        return Err(DataError::IsDirectory { path: path.to_owned() });
    }
    let parent = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    if !parent.is_dir() {
        return Err(DataError::Io {
            path: path.to_owned(),
            source: std::io::Error::new(std::io::ErrorKind::NotFound, "its directory does not exist"),
        });
    }
    // The writer's own temp file, created and removed: a read-only or full directory, or one
    // the user may not write, is found now rather than after the work.
    let probe = temp_path_for(path);
    File::create(&probe).map_err(io_error(path))?;
    let _ = std::fs::remove_file(&probe);
    Ok(())
}

/// Reads an `n × d` point set from `.csv` (optional header line) or `.npy` (2-D, f32 or f64).
pub fn read_points(path: &Path) -> Result<Array2<f32>> {
    let format = format_of(path)?;
    if path.is_dir() {
        return Err(DataError::IsDirectory { path: path.to_owned() });
    }
    // A device or a pipe (/dev/zero named x.csv) would be read without end.
    if path.exists() && !std::fs::metadata(path).map_err(io_error(path))?.is_file() {
        return Err(DataError::Io {
            path: path.to_owned(),
            source: std::io::Error::other("not a regular file"),
        });
    }
    let points = match format {
        Format::Csv => parse_csv(path, &std::fs::read_to_string(path).map_err(io_error(path))?)?,
        Format::Npy => read_npy(path)?,
    };
    if points.nrows() == 0 || points.ncols() == 0 {
        return Err(DataError::Empty { path: path.to_owned() });
    }
    Ok(points)
}

/// Reads a point set whose CSV columns `names` are taken out as condition
/// columns (one `Vec` per name, in order); the other columns are the points.
pub fn read_points_taking(path: &Path, names: &[&str]) -> Result<(Array2<f32>, Vec<Vec<f32>>)> {
    let table = read_points(path)?;
    if names.is_empty() {
        return Ok((table, Vec::new()));
    }
    let condition = |message: String| DataError::Condition(format!("{}: {message}", path.display()));
    if format_of(path)? != Format::Csv {
        return Err(condition(format!(
            "a .npy file has no column names to find `{}` in; give conditions as .npy files of one value per point",
            names[0]
        )));
    }
    let text = std::fs::read_to_string(path).map_err(io_error(path))?;
    let header: Vec<String> = text
        .strip_prefix('\u{feff}')
        .unwrap_or(&text)
        .lines()
        .find(|line| !line.trim().is_empty())
        .map(|line| line.split(',').map(|c| c.trim().to_owned()).collect())
        .filter(|cells: &Vec<String>| cells.iter().all(|c| c.parse::<f64>().is_err()))
        .ok_or_else(|| condition(format!("no header line to find column `{}` in", names[0])))?;
    let indices = names
        .iter()
        .map(|name| {
            let found: Vec<usize> = (0..header.len()).filter(|&j| header[j] == *name).collect();
            match found[..] {
                [j] => Ok(j),
                [] => Err(condition(format!("no column `{name}` (columns: {})", header.join(", ")))),
                _ => Err(condition(format!(
                    "the header names column `{name}` {} times (columns {}): rename all but one",
                    found.len(),
                    found.iter().map(|j| (j + 1).to_string()).collect::<Vec<_>>().join(", ")
                ))),
            }
        })
        .collect::<Result<Vec<usize>>>()?;
    if indices.len() >= table.ncols() {
        return Err(condition("every column is a condition; no coordinates are left".to_owned()));
    }
    let taken = indices.iter().map(|&j| table.column(j).to_vec()).collect();
    let kept: Vec<usize> = (0..table.ncols()).filter(|j| !indices.contains(j)).collect();
    Ok((table.select(ndarray::Axis(1), &kept), taken))
}

/// Reads a 1-D `.npy` of f32, f64, i32 or i64 values (labels are often integers), each finite.
pub fn read_vector(path: &Path) -> Result<ndarray::Array1<f32>> {
    if format_of(path)? != Format::Npy {
        return Err(DataError::Extension { path: path.to_owned() });
    }
    check_npy_size(path, true)?;
    let open = || File::open(path).map_err(io_error(path));
    let values = match ndarray::Array1::<f32>::read_npy(open()?) {
        Ok(values) => values,
        Err(error) => {
            let wider = ndarray::Array1::<f64>::read_npy(open()?).map(|v| v.mapv(|x| x as f32)).ok();
            let long = || ndarray::Array1::<i64>::read_npy(open().ok()?).ok().map(|v| v.mapv(|x| x as f32));
            let int = || ndarray::Array1::<i32>::read_npy(open().ok()?).ok().map(|v| v.mapv(|x| x as f32));
            wider.or_else(long).or_else(int).ok_or_else(|| DataError::Npy {
                path: path.to_owned(),
                message: format!("expected a 1-D or 2-D array ({error})"),
            })?
        }
    };
    for (row, value) in values.iter().enumerate() {
        check_finite(path, f64::from(*value), row + 1, 1)?;
    }
    Ok(values)
}

/// Writes points as CSV (header `coord0,coord1,…`) or `.npy` (f32), chosen by extension.
pub fn write_points(path: &Path, points: &Array2<f32>) -> Result<()> {
    write_table(path, points, &crate::tables::coordinate_names(points.ncols()))
}

/// Writes a table as CSV (with `names` as the header) or `.npy` (f32, no names).
pub fn write_table(path: &Path, points: &Array2<f32>, names: &[String]) -> Result<()> {
    match format_of(path)? {
        Format::Csv => write_atomically(path, |out| {
            writeln!(out, "{}", names.join(","))?;
            for row in points.rows() {
                let cells: Vec<String> = row.iter().map(f32::to_string).collect();
                writeln!(out, "{}", cells.join(","))?;
            }
            Ok(())
        }),
        Format::Npy => write_atomically(path, |out| {
            points.write_npy(out).map_err(|e| std::io::Error::other(e.to_string()))
        }),
    }
}

/// Parses CSV text. A first line whose cells are all non-numeric is a header.
pub fn parse_csv(path: &Path, text: &str) -> Result<Array2<f32>> {
    let mut values = Vec::new();
    let mut width = None;
    let mut rows = 0;
    // A byte-order mark (spreadsheet exports) is not part of the first cell.
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    for (index, line) in text.lines().enumerate() {
        let line_number = index + 1;
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let cells: Vec<&str> = line.split(',').map(str::trim).collect();
        if rows == 0 && width.is_none() && cells.iter().all(|c| c.parse::<f64>().is_err()) {
            width = Some(cells.len());
            continue;
        }
        let expected = *width.get_or_insert(cells.len());
        if cells.len() != expected {
            return Err(DataError::Ragged {
                path: path.to_owned(),
                line: line_number,
                expected,
                found: cells.len(),
            });
        }
        for (column, cell) in cells.iter().enumerate() {
            let value: f64 = cell.parse().map_err(|_| DataError::NotANumber {
                path: path.to_owned(),
                line: line_number,
                column: column + 1,
                cell: (*cell).to_owned(),
            })?;
            check_finite(path, value, line_number, column + 1)?;
            values.push(value as f32);
        }
        rows += 1;
    }
    if rows == 0 {
        return Err(DataError::Empty { path: path.to_owned() });
    }
    let width = width.unwrap_or(0);
    Array2::from_shape_vec((rows, width), values)
        .map_err(|e| DataError::Npy { path: path.to_owned(), message: e.to_string() })
}

/// Compares the data size a `.npy` header claims with the bytes the file
/// holds, before the reader allocates what the header asks for.
fn check_npy_size(path: &Path, integers: bool) -> Result<()> {
    use std::io::Read;
    let npy_error = |message: String| DataError::Npy { path: path.to_owned(), message };
    let mut file = File::open(path).map_err(io_error(path))?;
    let file_len = file.metadata().map_err(io_error(path))?.len() as u128;
    let mut preamble = [0u8; 10];
    if file.read_exact(&mut preamble).is_err() || &preamble[..6] != b"\x93NUMPY" {
        // Not a .npy header: the reader says what is wrong with it.
        return Ok(());
    }
    let (header_len, header_start) = if preamble[6] == 1 {
        (u128::from(u16::from_le_bytes([preamble[8], preamble[9]])), 10)
    } else {
        let mut high = [0u8; 2];
        file.read_exact(&mut high).map_err(io_error(path))?;
        (u128::from(u32::from_le_bytes([preamble[8], preamble[9], high[0], high[1]])), 12)
    };
    if header_start + header_len > file_len {
        return Err(npy_error(format!("its header claims {header_len} bytes, past the end of the file")));
    }
    let mut header = vec![0u8; header_len as usize];
    file.read_exact(&mut header).map_err(io_error(path))?;
    let text = String::from_utf8_lossy(&header);
    // The element type, as NumPy spells it ('<f4'): anything but a 4- or 8-byte float is named
    // here, before its size could be mistaken for a truncated file.
    let descr =
        text.split("'descr':").nth(1).and_then(|rest| rest.split('\'').nth(1)).unwrap_or_default().to_owned();
    let integer = integers && ["i4", "i8"].iter().any(|t| descr.ends_with(t));
    if !(descr.ends_with("f4") || descr.ends_with("f8") || integer) {
        let expected = if integers { "float32, float64, int32 or int64" } else { "float32 or float64" };
        return Err(npy_error(format!(
            "unsupported element type `{descr}` (NumPy's dtype string): expected {expected} \
             (convert with `array.astype('float32')`)"
        )));
    }
    let shape = text
        .split("'shape':")
        .nth(1)
        .and_then(|rest| rest.split(')').next())
        .map(|tuple| {
            tuple
                .trim()
                .trim_start_matches('(')
                .split(',')
                .filter_map(|n| n.trim().parse::<u128>().ok())
                .collect::<Vec<_>>()
        })
        .unwrap_or_default();
    let item_bytes: u128 = if descr.ends_with('8') { 8 } else { 4 };
    let claimed = shape.iter().fold(1u128, |total, &n| total.saturating_mul(n)).saturating_mul(item_bytes);
    let held = file_len - header_start - header_len;
    if claimed > held {
        let dims: Vec<String> = shape.iter().map(u128::to_string).collect();
        return Err(npy_error(format!(
            "its header claims {} values ({}) but the file holds {} of data",
            dims.join(" × "),
            crate::budget::human(claimed),
            crate::budget::human(held)
        )));
    }
    Ok(())
}

fn check_finite(path: &Path, value: f64, line: usize, column: usize) -> Result<()> {
    // Checked after rounding, so 1e300 (infinite as f32) is caught too.
    if (value as f32).is_finite() {
        Ok(())
    } else if value.is_finite() {
        Err(DataError::OutOfRange { path: path.to_owned(), line, column, value })
    } else {
        Err(DataError::NotFinite { path: path.to_owned(), line, column, value })
    }
}

fn read_npy(path: &Path) -> Result<Array2<f32>> {
    check_npy_size(path, false)?;
    let open = || File::open(path).map_err(io_error(path));
    let points = match Array2::<f32>::read_npy(open()?) {
        Ok(points) => points,
        Err(f32_error) => match Array2::<f64>::read_npy(open()?) {
            Ok(points) => points.mapv(|x| x as f32),
            Err(_) => {
                return Err(DataError::Npy {
                    path: path.to_owned(),
                    message: format!("expected a 2-D array of float32 or float64 ({f32_error})"),
                });
            }
        },
    };
    for ((row, column), value) in points.indexed_iter() {
        // A .npy has no lines; report the row (1-based) as the line.
        check_finite(path, f64::from(*value), row + 1, column + 1)?;
    }
    Ok(points)
}
