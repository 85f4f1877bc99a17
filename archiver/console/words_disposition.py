"""The disposition screen's words in Vietnamese and English (see :mod:`.words`)."""

from __future__ import annotations

DISPOSITION_WORDS: dict[str, dict[str, str]] = {
    "disposition": {"en": "Disposition", "vi": "Tiêu huỷ"},
    "two_person_on": {
        "en": "Two-person rule: a request is approved by another officer than the one who made it.",
        "vi": "Quy tắc hai người: yêu cầu phải được một cán bộ khác với người tạo phê duyệt.",
    },
    "two_person_off": {
        "en": "Two-person rule off: the officer who made a request may approve it.",
        "vi": "Quy tắc hai người đang tắt: người tạo yêu cầu có thể tự phê duyệt.",
    },
    "as_of": {"en": "Retention ended by", "vi": "Hết hạn lưu giữ trước"},
    "list_due": {"en": "List what is due", "vi": "Liệt kê bản ghi đến hạn"},
    "due_by": {"en": "Due by", "vi": "Đến hạn trước"},
    "due_recordings": {"en": "recording(s) due", "vi": "bản ghi đến hạn"},
    "kept_count": {"en": "kept", "vi": "được giữ lại"},
    "disposed_before": {"en": "disposed of before", "vi": "đã tiêu huỷ trước đó"},
    "object_key": {"en": "Object", "vi": "Đối tượng lưu trữ"},
    "rule": {"en": "Rule", "vi": "Quy tắc"},
    "retention_ended": {"en": "Retention ended", "vi": "Hết hạn lưu giữ"},
    "size": {"en": "Bytes", "vi": "Byte"},
    "bytes": {"en": "bytes", "vi": "byte"},
    "pending": {"en": "tombstoned on", "vi": "đã lập bia mộ ngày"},
    "request_disposition": {
        "en": "Request disposition of these recordings",
        "vi": "Yêu cầu tiêu huỷ các bản ghi này",
    },
    "kept": {"en": "Kept, and why", "vi": "Được giữ lại và lý do"},
    "disposition_requests": {"en": "Disposition requests", "vi": "Các yêu cầu tiêu huỷ"},
    "request": {"en": "Request", "vi": "Yêu cầu"},
    "requested_by": {"en": "Requested by", "vi": "Người yêu cầu"},
    "approved_by": {"en": "Approved by", "vi": "Người phê duyệt"},
    "state": {"en": "State", "vi": "Trạng thái"},
    "status_requested": {"en": "awaiting approval", "vi": "chờ phê duyệt"},
    "status_approved": {"en": "approved, no outcome", "vi": "đã duyệt, chưa có kết quả"},
    "status_done": {"en": "done", "vi": "hoàn tất"},
    "status_failed": {"en": "done, some failed", "vi": "hoàn tất, có lỗi"},
    "no_requests": {"en": "No disposition request yet.", "vi": "Chưa có yêu cầu tiêu huỷ nào."},
    "left_for_later": {"en": "more left for a later request", "vi": "còn lại cho yêu cầu sau"},
    "approve_dispose": {"en": "Approve and dispose", "vi": "Phê duyệt và tiêu huỷ"},
    "own_request": {
        "en": "You made this request: another officer must approve it (two-person rule).",
        "vi": "Bạn đã tạo yêu cầu này: một cán bộ khác phải phê duyệt (quy tắc hai người).",
    },
    "no_outcome": {
        "en": "Approved, but no outcome was recorded: the run stopped (see the audit trail). "
        "Run archiver dispose to finish it.",
        "vi": "Đã duyệt nhưng chưa ghi kết quả: lần chạy đã dừng (xem nhật ký kiểm toán). "
        "Chạy archiver dispose để hoàn tất.",
    },
    "disposal_outcome": {"en": "Outcome", "vi": "Kết quả tiêu huỷ"},
    "disposed_count": {"en": "disposed of", "vi": "đã tiêu huỷ"},
    "skipped_count": {"en": "skipped", "vi": "bỏ qua"},
    "failed_count": {"en": "failed", "vi": "thất bại"},
    "certificate": {"en": "Certificate of destruction", "vi": "Biên bản tiêu huỷ"},
    "disposed": {"en": "Disposed of", "vi": "Đã tiêu huỷ"},
    "skipped": {"en": "Skipped, and why", "vi": "Bỏ qua và lý do"},
    "failed": {"en": "Failed, and why", "vi": "Thất bại và lý do"},
    "request_damaged": {"en": "Refused", "vi": "Từ chối"},
    "covered": {"en": "Recordings covered", "vi": "Các bản ghi thuộc yêu cầu"},
}
