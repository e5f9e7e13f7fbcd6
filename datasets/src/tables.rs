//! Tables out: rows of any serialisable shape written as JSON Lines or CSV, the forms that
//! pandas, `datasets.load_dataset` and spreadsheets read (`wolf report --per-video`).
//!
//! CSV takes flat rows: a field that is a list or an object is written as its JSON text.

use std::io::Write;

use serde::Serialize;

/// How a table is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TableFormat {
    /// One JSON object a line.
    Jsonl,
    /// A header line, then one line a row; a missing value is an empty cell.
    Csv,
}

#[derive(Debug, thiserror::Error)]
pub enum TableError {
    #[error("cannot write the table: {0}")]
    Io(#[from] std::io::Error),
    #[error("cannot write the table as CSV: {0}")]
    Csv(#[from] csv::Error),
    #[error("cannot write the table as JSON: {0}")]
    Json(#[from] serde_json::Error),
}

/// Writes `rows` to `out` in `format`.
pub fn write_table<T: Serialize>(
    rows: &[T],
    format: TableFormat,
    mut out: impl Write,
) -> Result<(), TableError> {
    match format {
        TableFormat::Jsonl => {
            for row in rows {
                serde_json::to_writer(&mut out, row)?;
                out.write_all(b"\n")?;
            }
        }
        TableFormat::Csv => {
            let mut csv = csv::Writer::from_writer(out);
            for row in rows {
                csv.serialize(row)?;
            }
            csv.flush()?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Serialize)]
    struct Row {
        video: &'static str,
        caption: &'static str,
        value: Option<f64>,
    }

    #[test]
    fn jsonl_and_csv_hold_every_row_with_quoting_and_empty_cells() {
        let rows = [
            Row {
                video: "a.mp4",
                caption: "A cat, \"running\".",
                value: Some(0.5),
            },
            Row {
                video: "b.mp4",
                caption: "Two\nlines.",
                value: None,
            },
        ];
        let mut jsonl = Vec::new();
        write_table(&rows, TableFormat::Jsonl, &mut jsonl).unwrap();
        let lines: Vec<serde_json::Value> = String::from_utf8(jsonl)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines[1]["caption"], "Two\nlines.");
        assert_eq!(lines[1]["value"], serde_json::Value::Null);

        let mut text = Vec::new();
        write_table(&rows, TableFormat::Csv, &mut text).unwrap();
        let mut read = csv::Reader::from_reader(text.as_slice());
        assert_eq!(read.headers().unwrap(), vec!["video", "caption", "value"]);
        let records: Vec<csv::StringRecord> = read.records().map(Result::unwrap).collect();
        assert_eq!(&records[0][1], "A cat, \"running\".");
        assert_eq!(&records[0][2], "0.5");
        assert_eq!(&records[1][1], "Two\nlines.");
        assert_eq!(&records[1][2], "");
    }
}
