//! Tables out: rows of any serialisable shape written as JSON Lines, CSV or Parquet, the
//! forms that pandas, `datasets.load_dataset` and spreadsheets read (`wolf report
//! --per-video`).
//!
//! The caller names the columns in their order (serde_json's maps sort their keys). CSV
//! and Parquet take flat rows: a field that is a list or an object is written as its
//! JSON text. A Parquet column's type is that of its values: text, 64-bit integers,
//! doubles or booleans, every column nullable; a column of mixed values is text.

use std::io::Write;
use std::sync::Arc;

use serde::Serialize;
use serde_json::{Map, Value};

/// How a table is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TableFormat {
    /// One JSON object a line.
    Jsonl,
    /// A header line, then one line a row; a missing value is an empty cell.
    Csv,
    /// Snappy-compressed, in row groups of [`ROW_GROUP`] rows.
    Parquet,
}

/// Rows in a Parquet row group.
pub const ROW_GROUP: usize = 65_536;

#[derive(Debug, thiserror::Error)]
pub enum TableError {
    #[error("cannot write the table: {0}")]
    Io(#[from] std::io::Error),
    #[error("cannot write the table as CSV: {0}")]
    Csv(#[from] csv::Error),
    #[error("cannot write the table as JSON: {0}")]
    Json(#[from] serde_json::Error),
    #[error("cannot write the table as Parquet: {0}")]
    Parquet(#[from] parquet::errors::ParquetError),
    #[error("a table's row must be a struct or a map; got {0}")]
    NotARow(Value),
}

/// Writes `rows` to `out` in `format`, with the columns `columns` in that order.
///
/// Memory stays bounded by a row group whatever the number of rows: CSV converts one
/// row at a time; Parquet reads the rows twice, once for its columns' types and once
/// to write them, [`ROW_GROUP`] rows at a time.
pub fn write_table<T: Serialize>(
    rows: &[T],
    columns: &[&str],
    format: TableFormat,
    mut out: impl Write + Send,
) -> Result<(), TableError> {
    match format {
        TableFormat::Jsonl => {
            for row in rows {
                serde_json::to_writer(&mut out, row)?;
                out.write_all(b"\n")?;
            }
            Ok(())
        }
        TableFormat::Csv => {
            let mut csv = csv::Writer::from_writer(out);
            csv.write_record(columns)?;
            for row in rows {
                let row = as_map(row)?;
                csv.write_record(columns.iter().map(|c| cell(row.get(*c))))?;
            }
            csv.flush()?;
            Ok(())
        }
        TableFormat::Parquet => {
            let mut kinds: Vec<Option<Kind>> = vec![None; columns.len()];
            for row in rows {
                let row = as_map(row)?;
                for (kind, column) in kinds.iter_mut().zip(columns) {
                    if let Some(value) = row.get(*column) {
                        *kind = Kind::widen(*kind, value);
                    }
                }
            }
            let kinds: Vec<Kind> = kinds.into_iter().map(|k| k.unwrap_or(Kind::Text)).collect();
            write_parquet(rows, columns, &kinds, out)
        }
    }
}

/// A row as a JSON object.
fn as_map<T: Serialize>(row: &T) -> Result<Map<String, Value>, TableError> {
    match serde_json::to_value(row)? {
        Value::Object(map) => Ok(map),
        other => Err(TableError::NotARow(other)),
    }
}

/// A value as a CSV cell or a Parquet text: strings as they are, null as nothing, the
/// rest as JSON.
fn cell(value: Option<&Value>) -> String {
    match value {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
    }
}

/// A Parquet column's type, from its values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Text,
    Int,
    Float,
    Bool,
}

impl Kind {
    /// The type of a column whose values so far were `kind`, after one more value: null
    /// changes nothing, an integer among floats is a float, any other mix is text.
    fn widen(kind: Option<Self>, value: &Value) -> Option<Self> {
        let this = match value {
            Value::Null => return kind,
            Value::Bool(_) => Self::Bool,
            Value::Number(n) if n.is_i64() => Self::Int,
            Value::Number(_) => Self::Float,
            _ => Self::Text,
        };
        Some(match (kind, this) {
            (None, this) => this,
            (Some(Self::Int), Self::Float) | (Some(Self::Float), Self::Int) => Self::Float,
            (Some(before), this) if before == this => this,
            _ => Self::Text,
        })
    }
}

fn write_parquet<T: Serialize>(
    rows: &[T],
    columns: &[&str],
    kinds: &[Kind],
    out: impl Write + Send,
) -> Result<(), TableError> {
    use parquet::basic::{Compression, LogicalType, Repetition, Type as Physical};
    use parquet::data_type::{BoolType, ByteArray, ByteArrayType, DoubleType, Int64Type};
    use parquet::file::properties::WriterProperties;
    use parquet::file::writer::SerializedFileWriter;
    use parquet::schema::types::Type;

    let fields = columns
        .iter()
        .zip(kinds)
        .map(|(name, kind)| {
            let (physical, logical) = match kind {
                Kind::Text => (Physical::BYTE_ARRAY, Some(LogicalType::String)),
                Kind::Int => (Physical::INT64, None),
                Kind::Float => (Physical::DOUBLE, None),
                Kind::Bool => (Physical::BOOLEAN, None),
            };
            Type::primitive_type_builder(name, physical)
                .with_repetition(Repetition::OPTIONAL)
                .with_logical_type(logical)
                .build()
                .map(Arc::new)
        })
        .collect::<Result<Vec<_>, _>>()?;
    let schema = Type::group_type_builder("table")
        .with_fields(fields)
        .build()?;
    let properties = WriterProperties::builder()
        .set_compression(Compression::SNAPPY)
        .build();
    let mut writer = SerializedFileWriter::new(out, Arc::new(schema), Arc::new(properties))?;
    for group in rows.chunks(ROW_GROUP) {
        let group = group.iter().map(as_map).collect::<Result<Vec<_>, _>>()?;
        let mut row_group = writer.next_row_group()?;
        for (column, kind) in columns.iter().zip(kinds) {
            let values: Vec<Option<&Value>> = group
                .iter()
                .map(|r| r.get(*column).filter(|v| !v.is_null()))
                .collect();
            let defined: Vec<i16> = values.iter().map(|v| i16::from(v.is_some())).collect();
            let present = values.iter().flatten();
            let mut writer = row_group
                .next_column()?
                .expect("a column writer for each column of the schema; this is a bug");
            let defined = Some(defined.as_slice());
            match kind {
                Kind::Text => {
                    let values: Vec<ByteArray> = present
                        .map(|v| ByteArray::from(cell(Some(v)).into_bytes()))
                        .collect();
                    write_column::<ByteArrayType>(&mut writer, &values, defined)?;
                }
                Kind::Int => {
                    let values: Vec<i64> = present.filter_map(|v| v.as_i64()).collect();
                    write_column::<Int64Type>(&mut writer, &values, defined)?;
                }
                Kind::Float => {
                    let values: Vec<f64> = present.filter_map(|v| v.as_f64()).collect();
                    write_column::<DoubleType>(&mut writer, &values, defined)?;
                }
                Kind::Bool => {
                    let values: Vec<bool> = present.filter_map(|v| v.as_bool()).collect();
                    write_column::<BoolType>(&mut writer, &values, defined)?;
                }
            }
            writer.close()?;
        }
        row_group.close()?;
    }
    writer.close()?;
    Ok(())
}

/// One column's present values and its definition levels (1 present, 0 null).
fn write_column<T: parquet::data_type::DataType>(
    writer: &mut parquet::file::writer::SerializedColumnWriter<'_>,
    values: &[T::T],
    defined: Option<&[i16]>,
) -> Result<(), parquet::errors::ParquetError> {
    writer.typed::<T>().write_batch(values, defined, None)?;
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
        samples: i64,
    }

    const COLUMNS: [&str; 4] = ["video", "caption", "value", "samples"];

    fn rows() -> [Row; 2] {
        [
            Row {
                video: "a.mp4",
                caption: "A cat, \"running\".",
                value: Some(0.5),
                samples: 1,
            },
            Row {
                video: "b.mp4",
                caption: "Two\nlines.",
                value: None,
                samples: 2,
            },
        ]
    }

    #[test]
    fn jsonl_and_csv_hold_every_row_with_quoting_and_empty_cells() {
        let mut jsonl = Vec::new();
        write_table(&rows(), &COLUMNS, TableFormat::Jsonl, &mut jsonl).unwrap();
        let lines: Vec<Value> = String::from_utf8(jsonl)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines[1]["caption"], "Two\nlines.");
        assert_eq!(lines[1]["value"], Value::Null);

        let mut text = Vec::new();
        write_table(&rows(), &COLUMNS, TableFormat::Csv, &mut text).unwrap();
        let mut read = csv::Reader::from_reader(text.as_slice());
        assert_eq!(read.headers().unwrap(), COLUMNS.as_slice());
        let records: Vec<csv::StringRecord> = read.records().map(Result::unwrap).collect();
        assert_eq!(&records[0][1], "A cat, \"running\".");
        assert_eq!(&records[0][2], "0.5");
        assert_eq!(&records[1][1], "Two\nlines.");
        assert_eq!(&records[1][2], "");
        // No rows: the header alone.
        let mut empty = Vec::new();
        write_table::<Row>(&[], &COLUMNS, TableFormat::Csv, &mut empty).unwrap();
        assert_eq!(
            String::from_utf8(empty).unwrap(),
            "video,caption,value,samples\n"
        );
    }

    #[test]
    fn parquet_reads_back_with_its_types_and_nulls() {
        use parquet::file::reader::{FileReader, SerializedFileReader};
        let mut bytes = Vec::new();
        write_table(&rows(), &COLUMNS, TableFormat::Parquet, &mut bytes).unwrap();
        let mut file = tempfile::tempfile().unwrap();
        std::io::Write::write_all(&mut file, &bytes).unwrap();
        let reader = SerializedFileReader::new(file).unwrap();
        let read: Vec<Value> = reader
            .get_row_iter(None)
            .unwrap()
            .map(|r| r.unwrap().to_json_value())
            .collect();
        assert_eq!(
            read,
            [
                serde_json::json!({"video": "a.mp4", "caption": "A cat, \"running\".", "value": 0.5, "samples": 1}),
                serde_json::json!({"video": "b.mp4", "caption": "Two\nlines.", "value": null, "samples": 2}),
            ]
        );
        let of = |values: &[Value]| values.iter().fold(None, Kind::widen);
        assert_eq!(of(&[Value::from(1), Value::from(0.5)]), Some(Kind::Float));
        assert_eq!(of(&[Value::from(1), Value::from("x")]), Some(Kind::Text));
        assert_eq!(of(&[Value::Null, Value::from(true)]), Some(Kind::Bool));
        assert_eq!(of(&[Value::Null]), None);
    }
}
