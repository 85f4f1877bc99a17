"""The console's words in Vietnamese and English, and how dates are shown.

A page asks ``t("key")``; a key missing from a language falls back to English,
then to the key itself, so a page never breaks on a missing word.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, tzinfo

from archiver.console.words_disposition import DISPOSITION_WORDS

LANGUAGES = ("vi", "en")

WORDS: dict[str, dict[str, str]] = {
    "title": {"en": "Call recording archive", "vi": "Kho ghi âm cuộc gọi"},
    "sign_in": {"en": "Sign in", "vi": "Đăng nhập"},
    "sign_out": {"en": "Sign out", "vi": "Đăng xuất"},
    "user": {"en": "User name", "vi": "Tên đăng nhập"},
    "password": {"en": "Password", "vi": "Mật khẩu"},
    "bad_login": {"en": "Wrong user name or password.", "vi": "Sai tên đăng nhập hoặc mật khẩu."},
    "too_many": {
        "en": "Too many failed attempts: try again later.",
        "vi": "Đăng nhập sai quá nhiều lần: hãy thử lại sau.",
    },
    "search": {"en": "Search", "vi": "Tìm kiếm"},
    "audit": {"en": "Audit trail", "vi": "Nhật ký kiểm toán"},
    "phone": {"en": "Phone number", "vi": "Số điện thoại"},
    "extension": {"en": "Extension", "vi": "Máy lẻ"},
    "agent": {"en": "Agent", "vi": "Nhân viên"},
    "direction": {"en": "Direction", "vi": "Chiều gọi"},
    "any": {"en": "any", "vi": "tất cả"},
    "inbound": {"en": "inbound", "vi": "gọi vào"},
    "outbound": {"en": "outbound", "vi": "gọi ra"},
    "local": {"en": "internal", "vi": "nội bộ"},
    "ident": {"en": "Call id (sip_call_id or CDR id)", "vi": "Mã cuộc gọi (sip_call_id hoặc CDR)"},
    "date_from": {"en": "From (date)", "vi": "Từ ngày"},
    "date_to": {"en": "To (date, included)", "vi": "Đến ngày (tính cả ngày này)"},
    "started": {"en": "Started", "vi": "Bắt đầu"},
    "from": {"en": "From", "vi": "Gọi từ"},
    "to": {"en": "To", "vi": "Gọi đến"},
    "duration": {"en": "Talk (s)", "vi": "Đàm thoại (giây)"},
    "status": {"en": "Integrity", "vi": "Toàn vẹn"},
    "unchecked": {"en": "not checked yet", "vi": "chưa kiểm tra"},
    "intact": {"en": "intact", "vi": "nguyên vẹn"},
    "damaged": {"en": "DAMAGED", "vi": "BỊ HỎNG"},
    "results": {"en": "calls found", "vi": "cuộc gọi tìm thấy"},
    "no_results": {"en": "No archived call matches.", "vi": "Không có cuộc gọi nào khớp."},
    "previous": {"en": "Previous", "vi": "Trang trước"},
    "next": {"en": "Next", "vi": "Trang sau"},
    "details": {"en": "Details", "vi": "Chi tiết"},
    "reason": {"en": "Reason", "vi": "Lý do"},
    "reason_hint": {
        "en": "Why (recorded in the audit trail)",
        "vi": "Lý do (được ghi vào nhật ký kiểm toán)",
    },
    "reason_needed": {"en": "A reason is required.", "vi": "Cần nhập lý do."},
    "play": {"en": "Play", "vi": "Nghe"},
    "download": {"en": "Download", "vi": "Tải về"},
    "export": {"en": "Export selected (ZIP)", "vi": "Xuất các cuộc gọi đã chọn (ZIP)"},
    "select_all": {"en": "Select all", "vi": "Chọn tất cả"},
    "nothing_selected": {"en": "No call selected.", "vi": "Chưa chọn cuộc gọi nào."},
    "too_many_selected": {"en": "Too many calls selected; at most", "vi": "Chọn quá nhiều; tối đa"},
    "hold": {"en": "Legal hold", "vi": "Lưu giữ pháp lý"},
    "hold_on": {"en": "Put on hold", "vi": "Bật lưu giữ"},
    "hold_off": {"en": "Release hold", "vi": "Tắt lưu giữ"},
    "on": {"en": "ON", "vi": "BẬT"},
    "off": {"en": "OFF", "vi": "TẮT"},
    "retention": {"en": "Retention", "vi": "Thời hạn lưu giữ"},
    "until": {"en": "until", "vi": "đến"},
    "no_retention": {"en": "no retention", "vi": "không có thời hạn lưu giữ"},
    "no_lock": {
        "en": "This storage has no Object Lock: legal holds are unavailable.",
        "vi": "Kho lưu trữ không có Object Lock: không thể lưu giữ pháp lý.",
    },
    "refused": {
        "en": "Refused: the recording failed its check",
        "vi": "Từ chối: bản ghi không đạt kiểm tra",
    },
    "not_allowed": {
        "en": "Your role does not allow this.",
        "vi": "Vai trò của bạn không được phép.",
    },
    "when": {"en": "When", "vi": "Thời điểm"},
    "action": {"en": "Action", "vi": "Thao tác"},
    "target": {"en": "Target", "vi": "Đối tượng"},
    "result": {"en": "Result", "vi": "Kết quả"},
    "export_csv": {"en": "Export CSV", "vi": "Xuất CSV"},
    "filter": {"en": "Filter", "vi": "Lọc"},
    "role": {"en": "Role", "vi": "Vai trò"},
    "field": {"en": "Field", "vi": "Trường"},
    "value": {"en": "Value", "vi": "Giá trị"},
    "back": {"en": "Back to search", "vi": "Quay lại tìm kiếm"},
    "bad_request": {"en": "Bad request", "vi": "Yêu cầu không hợp lệ"},
    "search_calls": {"en": "Search archived calls", "vi": "Tìm cuộc gọi đã lưu trữ"},
    "time_from": {"en": "From (time of day)", "vi": "Từ giờ"},
    "time_to": {"en": "To (time of day)", "vi": "Đến giờ"},
    "min_seconds": {"en": "Talk at least (s)", "vi": "Đàm thoại ít nhất (giây)"},
    "max_seconds": {"en": "Talk at most (s)", "vi": "Đàm thoại nhiều nhất (giây)"},
    "outcome": {"en": "Outcome", "vi": "Kết quả cuộc gọi"},
    "customer": {"en": "Customer id", "vi": "Mã khách hàng"},
    "damaged_filter": {"en": "damaged", "vi": "bị hỏng"},
    "saved_searches": {"en": "Saved searches", "vi": "Tìm kiếm đã lưu"},
    "save_as": {"en": "Save this search as", "vi": "Lưu tìm kiếm này với tên"},
    "save": {"en": "Save", "vi": "Lưu"},
    "delete": {"en": "Delete", "vi": "Xoá"},
    "page_size": {"en": "Calls per page", "vi": "Số cuộc gọi mỗi trang"},
    "apply": {"en": "Apply", "vi": "Áp dụng"},
    "select_call": {"en": "Select call", "vi": "Chọn cuộc gọi"},
    "export_all": {"en": "Export all results:", "vi": "Xuất toàn bộ kết quả:"},
    "pages": {"en": "Pages", "vi": "Các trang"},
    "page": {"en": "Page", "vi": "Trang"},
    "audit_title": {"en": "Audit trail", "vi": "Nhật ký kiểm toán"},
    "records": {"en": "records", "vi": "bản ghi"},
    "call": {"en": "call", "vi": "cuộc gọi"},
    "calls": {"en": "calls", "vi": "cuộc gọi"},
    "error_title": {"en": "Something went wrong", "vi": "Đã xảy ra lỗi"},
    "error_400": {"en": "The request is not valid.", "vi": "Yêu cầu không hợp lệ."},
    "error_401": {"en": "Sign in first.", "vi": "Hãy đăng nhập trước."},
    "error_403": {"en": "This is not allowed.", "vi": "Không được phép thực hiện."},
    "error_404": {"en": "Not found.", "vi": "Không tìm thấy."},
    "error_409": {
        "en": "Refused: the recording failed its check.",
        "vi": "Từ chối: bản ghi không đạt kiểm tra.",
    },
    "error_413": {"en": "Too much at once.", "vi": "Yêu cầu quá lớn."},
    "error_429": {
        "en": "Too many requests: try again later.",
        "vi": "Quá nhiều yêu cầu: hãy thử lại sau.",
    },
    "error_503": {
        "en": "The storage is not available right now.",
        "vi": "Kho lưu trữ hiện không sẵn sàng.",
    },
    "error_other": {"en": "The request failed.", "vi": "Yêu cầu thất bại."},
    "detail": {"en": "Detail", "vi": "Chi tiết"},
    "cases": {"en": "Cases", "vi": "Hồ sơ vụ việc"},
    "case": {"en": "Case", "vi": "Hồ sơ"},
    "case_reference": {"en": "Reference", "vi": "Số tham chiếu"},
    "case_open": {"en": "Open a case", "vi": "Mở hồ sơ"},
    "no_cases": {"en": "No case yet.", "vi": "Chưa có hồ sơ nào."},
    "case_empty": {"en": "No call in this case yet.", "vi": "Hồ sơ chưa có cuộc gọi nào."},
    "add_to_case": {"en": "Add selected to case", "vi": "Thêm cuộc gọi đã chọn vào hồ sơ"},
    "evidence_package": {"en": "Evidence package (ZIP)", "vi": "Gói chứng cứ (ZIP)"},
    "history": {"en": "History", "vi": "Lịch sử"},
    "no_case": {"en": "(no case)", "vi": "(không thuộc hồ sơ)"},
    "not_indexed": {"en": "not indexed yet", "vi": "chưa được lập chỉ mục"},
    **DISPOSITION_WORDS,
}


def translator(lang: str) -> Callable[[str], str]:
    """``t(key)`` for one language."""

    def t(key: str) -> str:
        entry = WORDS.get(key)
        if entry is None:
            return key
        return entry.get(lang) or entry.get("en") or key

    return t


def call_time(value: object) -> str:
    """A call's ISO time as written, in the call's own zone: ``2026-03-01 09:15:00 +07:00``."""
    if not isinstance(value, str) or not value:
        return ""
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return value
    if moment.tzinfo is None:
        return moment.strftime("%Y-%m-%d %H:%M:%S")
    return _with_offset(moment)


def local_time(value: object, tz: tzinfo) -> str:
    """A UTC time (an audit record's) in the console's zone."""
    if not isinstance(value, str) or not value:
        return ""
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return value
    if moment.tzinfo is None:
        return value
    return _with_offset(moment.astimezone(tz))


def _with_offset(moment: datetime) -> str:
    offset = moment.strftime("%z")  # +0700 (strftime's %:z needs Python 3.12)
    return f"{moment:%Y-%m-%d %H:%M:%S} {offset[:3]}:{offset[3:5]}"
