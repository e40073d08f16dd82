//! Queries answered by Sextant itself rather than by datafusion-postgres: planned once
//! from the statement the client's SQL was parsed into, and their rows written by
//! [`Rows`] where it writes them.
//!
//! datafusion-postgres prints a simple query's statement back to SQL and parses it again,
//! and optimizes an extended query's plan at Execute before DataFusion optimizes it once
//! more; its encoder writes rows a value at a time through generic calls. Here a query
//! (`SELECT`, `WITH`, `VALUES`, not `SELECT ... INTO`) is planned from its parsed
//! statement and optimized once, as the embedded API does. Every other statement, and
//! extended queries with parameters, are still datafusion-postgres' (its hooks: `SET`,
//! `SHOW`, transactions, cursors, and the read-only guard).

use std::sync::Arc;

use datafusion::logical_expr::LogicalPlan;
use datafusion::physical_plan::SendableRecordBatchStream;
use datafusion::prelude::SessionContext;
use datafusion::sql::parser::Statement as DfStatement;
use datafusion::sql::sqlparser::ast::Statement;
use datafusion_postgres::arrow_pg::datatypes::arrow_schema_to_pg_fields;
use datafusion_postgres::arrow_pg::datatypes::df::encode_dataframe;
use datafusion_postgres::pgwire::api::portal::Format;
use datafusion_postgres::pgwire::api::results::{FieldInfo, QueryResponse, SendableRowStream};
use datafusion_postgres::pgwire::error::{PgWireError, PgWireResult};
use datafusion_postgres::pgwire::types::format::FormatOptions;
use futures::future::Either;
use futures::{StreamExt, stream};

use super::read_only::writes_into;
use super::rows::Rows;

/// Whether Sextant answers `statement` itself: a query that writes nothing.
pub(super) fn is_query(statement: &Statement) -> bool {
    matches!(statement, Statement::Query(query) if !writes_into(&query.body))
}

/// The plan of a query's parsed `statement`.
pub(super) async fn plan(
    session: &SessionContext,
    statement: Statement,
) -> PgWireResult<LogicalPlan> {
    session
        .state()
        .statement_to_plan(DfStatement::Statement(Box::new(statement)))
        .await
        .map_err(api_error)
}

/// A query's answer, started: the columns the client is told of, and its rows to come.
pub(super) struct Answer {
    pub fields: Arc<Vec<FieldInfo>>,
    pub rows: AnswerRows,
}

/// How an answer's rows are written.
pub(super) enum AnswerRows {
    /// Batches of the plan, written by [`Rows`].
    Written {
        batches: SendableRecordBatchStream,
        writer: Rows,
    },
    /// Rows written by arrow-pg, a message each.
    ArrowPg(SendableRowStream),
}

/// Starts running `plan`, to answer in `format` and the client's `options`.
pub(super) async fn start(
    session: &SessionContext,
    plan: LogicalPlan,
    format: &Format,
    options: FormatOptions,
) -> PgWireResult<Answer> {
    let frame = session
        .execute_logical_plan(plan)
        .await
        .map_err(api_error)?;
    let options = Arc::new(options);
    let schema = frame.schema().as_arrow().clone();
    let fields = Arc::new(arrow_schema_to_pg_fields(
        &schema,
        format,
        Some(Arc::clone(&options)),
    )?);
    let Some(writer) = Rows::new(&schema, &fields, &options) else {
        let response = encode_dataframe(frame, format, Some(options)).await?;
        return Ok(Answer {
            fields: response.row_schema,
            rows: AnswerRows::ArrowPg(response.data_rows),
        });
    };
    let batches = frame.execute_stream().await.map_err(api_error)?;
    Ok(Answer {
        fields,
        rows: AnswerRows::Written { batches, writer },
    })
}

/// Starts running `plan` and answers with its rows, for pgwire to send.
pub(super) async fn answer(
    session: &SessionContext,
    plan: LogicalPlan,
    format: &Format,
    options: FormatOptions,
) -> PgWireResult<QueryResponse> {
    let Answer { fields, rows } = start(session, plan, format, options).await?;
    let (batches, writer) = match rows {
        AnswerRows::Written { batches, writer } => (batches, writer),
        AnswerRows::ArrowPg(rows) => return Ok(QueryResponse::new(fields, rows)),
    };
    let rows = batches
        .map(move |batch| {
            match batch
                .map_err(api_error)
                .and_then(|batch| writer.encode(&batch))
            {
                Ok(rows) => Either::Left(stream::iter(rows.into_iter().map(Ok))),
                Err(e) => Either::Right(stream::once(async { Err(e) })),
            }
        })
        .flatten();
    Ok(QueryResponse::new(fields, rows))
}

pub(super) fn api_error(e: datafusion::error::DataFusionError) -> PgWireError {
    PgWireError::ApiError(Box::new(e))
}
