//! Reading one uploaded zip from a multipart form into a temporary file, within the
//! size limit; the zip's contents are checked later by the bundle reader (no entry
//! may leave its folder, no bombs).

use crate::error::AppError;
use axum::extract::Multipart;
use axum::http::StatusCode;
use std::io::Write;

/// An uploaded zip and the form's other fields.
pub struct Upload {
    /// The zip, removed when dropped.
    pub path: tempfile::TempPath,
    /// The form's CSRF token, when it had one.
    pub csrf: Option<String>,
}

fn too_big(limit: usize) -> AppError {
    AppError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        format!(
            "the upload is larger than the server's limit of {} MB: split the data into several versions, \
             or start the server with a larger --upload-limit",
            limit / (1024 * 1024)
        ),
    )
}

/// Reads the form: exactly one file part (the zip), at most `limit` bytes.
pub async fn read_zip(mut form: Multipart, limit: usize) -> Result<Upload, AppError> {
    let mut csrf = None;
    let mut found: Option<tempfile::TempPath> = None;
    loop {
        let field = match form.next_field().await {
            Ok(Some(f)) => f,
            Ok(None) => break,
            Err(e) if e.status() == StatusCode::PAYLOAD_TOO_LARGE => return Err(too_big(limit)),
            Err(e) => return Err(AppError::bad(format!("the upload is not a valid multipart form: {e}"))),
        };
        let name = field.name().unwrap_or("").to_string();
        if field.file_name().is_none() && name == "csrf" {
            // A token is 64 characters: read no more than a little over that.
            let mut field = field;
            let mut text = Vec::new();
            while let Some(chunk) = field
                .chunk()
                .await
                .map_err(|e| AppError::bad(format!("the form: {e}")))?
            {
                text.extend_from_slice(&chunk);
                if text.len() > 256 {
                    return Err(AppError::bad("the form's security token is too long"));
                }
            }
            csrf = Some(String::from_utf8_lossy(&text).into_owned());
            continue;
        }
        if field.file_name().is_none() && name != "file" && name != "zip" {
            // Other plain fields are ignored (scripts may send extra ones).
            continue;
        }
        if found.is_some() {
            return Err(AppError::bad("only one zip file can be uploaded at a time"));
        }
        let tmp = tempfile::Builder::new()
            .prefix("lockgate-upload-")
            .suffix(".zip")
            .tempfile()
            .map_err(|e| AppError::new(StatusCode::INTERNAL_SERVER_ERROR, format!("a temporary file: {e}")))?;
        let (mut file, path) = tmp.into_parts();
        let mut size = 0usize;
        let mut field = field;
        loop {
            let chunk = match field.chunk().await {
                Ok(Some(c)) => c,
                Ok(None) => break,
                Err(e) if e.status() == StatusCode::PAYLOAD_TOO_LARGE => return Err(too_big(limit)),
                Err(e) => return Err(AppError::bad(format!("reading the upload: {e}"))),
            };
            size += chunk.len();
            if size > limit {
                return Err(too_big(limit));
            }
            file.write_all(&chunk)
                .map_err(|e| AppError::new(StatusCode::INTERNAL_SERVER_ERROR, format!("writing the upload: {e}")))?;
        }
        if size == 0 {
            return Err(AppError::bad(
                "the uploaded file is empty: choose a zip of version folders",
            ));
        }
        found = Some(path);
    }
    let path = found
        .ok_or_else(|| AppError::bad("the form holds no file: send the zip as a multipart field named \"file\""))?;
    Ok(Upload { path, csrf })
}
