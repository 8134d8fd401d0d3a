//! PDF documents of Info Parquet: receipts (accusés de réception), art. 40-2 decision notices and
//! plain documents. They are tagged PDFs (a structure tree of headings and paragraphs, document
//! language and title) so that screen readers read them in order.

mod layout;
pub mod receipt;

pub use layout::{Block, PdfDocument, Style};
pub use receipt::{
    decision_notice_pdf, receipt_pdf, DecisionNoticeData, ReceiptAttachment, ReceiptData,
};
