//! The console's two languages: every label in English and Simplified Chinese.
//!
//! Labels are one struct filled twice by one macro, so a label cannot exist in one language
//! and be missing in the other: the build fails. Templates read `t.label`, checked by askama
//! at compile time. The language comes from the `pg_lang` cookie (the switch in the header)
//! or else the browser's `Accept-Language`; English when neither names zh.

use axum::http::HeaderMap;
use axum::http::header;

/// A language the console speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lang {
    /// English.
    En,
    /// Simplified Chinese.
    ZhCn,
}

/// The cookie the language switch sets (not a secret, so readable and long-lived).
pub const LANG_COOKIE: &str = "pg_lang";

impl Lang {
    /// The HTML `lang` tag.
    pub fn tag(self) -> &'static str {
        match self {
            Lang::En => "en",
            Lang::ZhCn => "zh-CN",
        }
    }

    /// Parses the tag the switch sends (`en`, `zh-CN`).
    pub fn parse(tag: &str) -> Option<Lang> {
        match tag {
            "en" => Some(Lang::En),
            "zh-CN" | "zh" => Some(Lang::ZhCn),
            _ => None,
        }
    }

    /// The labels in this language.
    pub fn labels(self) -> &'static Labels {
        match self {
            Lang::En => &EN,
            Lang::ZhCn => &ZH,
        }
    }

    /// The other language, for the switch.
    pub fn other(self) -> Lang {
        match self {
            Lang::En => Lang::ZhCn,
            Lang::ZhCn => Lang::En,
        }
    }

    /// The cookie's choice, else the first of `Accept-Language` we speak, else English.
    pub fn from_headers(headers: &HeaderMap) -> Lang {
        if let Some(lang) = crate::session::cookie(headers, LANG_COOKIE).and_then(Lang::parse) {
            return lang;
        }
        let accept = headers
            .get(header::ACCEPT_LANGUAGE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        Self::from_accept_language(accept)
    }

    /// The highest-weighted language in an `Accept-Language` value that we speak.
    pub fn from_accept_language(accept: &str) -> Lang {
        let mut best: Option<(f32, Lang)> = None;
        for part in accept.split(',') {
            let mut fields = part.split(';');
            let tag = fields.next().unwrap_or("").trim().to_ascii_lowercase();
            let q = fields
                .find_map(|f| f.trim().strip_prefix("q="))
                .and_then(|q| q.parse::<f32>().ok())
                .unwrap_or(1.0);
            let lang = if tag == "zh" || tag.starts_with("zh-") {
                Lang::ZhCn
            } else if tag == "en" || tag.starts_with("en-") {
                Lang::En
            } else {
                continue;
            };
            if best.is_none_or(|(b, _)| q > b) {
                best = Some((q, lang));
            }
        }
        best.map(|(_, l)| l).unwrap_or(Lang::En)
    }
}

macro_rules! labels {
    ($($key:ident: $en:expr, $zh:expr;)*) => {
        /// Every text the console shows, in one language.
        pub struct Labels {
            $(#[doc = $en] pub $key: &'static str,)*
        }
        /// English.
        pub static EN: Labels = Labels { $($key: $en,)* };
        /// Simplified Chinese.
        pub static ZH: Labels = Labels { $($key: $zh,)* };
    };
}

labels! {
    app: "poolguard console", "poolguard 控制台";
    skip: "Skip to content", "跳到正文";
    switch_lang: "中文", "English";
    nav_overview: "Overview", "概览";
    nav_hits: "Hits & queries", "命中与查询";
    nav_incidents: "Incidents", "事件";
    nav_quarantine: "Quarantine", "隔离";
    nav_feeds: "Feeds", "规则源";
    nav_clients: "Clients", "客户端";
    signed_in_as: "Signed in as", "当前用户";
    role: "Role", "角色";
    sign_in: "Sign in", "登录";
    sign_out: "Sign out", "退出登录";
    token: "API token", "API 令牌";
    username: "User name", "用户名";
    password: "Password", "密码";
    or_password: "or a user name and password", "或使用用户名和密码";
    bad_sign_in: "Sign-in failed: unknown token, or wrong user name or password.", "登录失败：令牌无效，或用户名/密码错误。";
    signed_out: "You are signed out.", "您已退出登录。";
    session_expired: "Your session has ended; sign in again.", "会话已结束，请重新登录。";
    csrf_refused: "This form is stale or was not sent by the console (CSRF check failed); reload the page and try again.", "表单已过期或并非由控制台提交（CSRF 校验失败），请刷新页面后重试。";
    forbidden: "Your role may not do this.", "您的角色无权执行此操作。";
    error: "Error", "错误";
    done: "Done.", "已完成。";
    times_in: "Times in", "时区";
    last_24h: "Last 24 h", "最近 24 小时";
    last_7d: "Last 7 days", "最近 7 天";
    last_30d: "Last 30 days", "最近 30 天";
    hits_over_time: "Hits over time", "命中趋势";
    total_hits: "Hits", "命中数";
    total_queries: "Queries", "查询数";
    top_clients: "Top clients", "命中最多的客户端";
    top_departments: "Top departments", "命中最多的部门";
    top_feeds: "Hits by feed", "各规则源命中数";
    top_names: "Top pool names", "命中最多的矿池域名";
    count: "Count", "次数";
    open_incidents: "Open incidents", "未关闭事件";
    overdue_incidents: "Overdue", "已超期";
    quarantined_clients: "Quarantined clients", "已隔离客户端";
    feed_freshness: "Feed freshness", "规则源更新状态";
    health: "Store and spool health", "存储与缓冲健康状况";
    status: "Status", "状态";
    none: "None.", "无。";
    client: "Client", "客户端";
    client_or_cidr: "Client (IP or CIDR)", "客户端（IP 或 CIDR）";
    name: "Name", "域名";
    name_hint: "name or *.suffix", "域名或 *.后缀";
    qtype: "Type", "类型";
    action: "Action", "动作";
    feed: "Feed", "规则源";
    department: "Department", "部门";
    mac: "MAC", "MAC 地址";
    account: "Account", "账号";
    owner: "Owner", "负责人";
    since: "From", "开始时间";
    until: "To", "结束时间";
    limit: "Rows", "行数";
    time: "Time", "时间";
    answer: "Answer", "应答";
    rule: "Rule", "规则";
    filter: "Filter", "筛选";
    clear: "Clear", "清除";
    table: "List", "列表";
    hits: "Hits", "命中";
    queries: "Queries", "查询";
    older: "Older →", "更早 →";
    newest: "← Newest", "← 最新";
    export_csv: "Export CSV", "导出 CSV";
    export_ndjson: "Export NDJSON", "导出 NDJSON";
    no_rows: "No rows match.", "没有符合条件的记录。";
    incident: "Incident", "事件";
    severity: "Severity", "严重程度";
    assignee: "Assignee", "处理人";
    overdue: "Overdue", "超期";
    any: "Any", "全部";
    yes: "Yes", "是";
    no: "No", "否";
    opened: "Opened", "创建时间";
    identify_due: "Identify by", "识别期限";
    report_due: "Report by", "上报期限";
    next_deadline: "Next deadline", "最近期限";
    deadlines: "Deadlines", "期限";
    met: "met", "已按时完成";
    missed: "missed", "已错过";
    pending: "pending", "待完成";
    not_needed: "not needed", "无需";
    due_in: "due in", "剩余";
    overdue_by: "overdue by", "已超期";
    identity: "Identity", "身份";
    asset: "Asset", "资产";
    location: "Location", "位置";
    contact: "Contact", "联系方式";
    hostname: "Host name", "主机名";
    device: "Device", "设备";
    responsible: "Responsible person", "责任人";
    hit_summary: "Hits by name", "按域名统计命中";
    first_hit: "First hit", "首次命中";
    last_hit: "Last hit", "最近命中";
    timeline: "Timeline", "时间线";
    notes: "Notes", "备注";
    add_note: "Add note", "添加备注";
    author: "Author", "作者";
    move_to: "Move to", "变更状态为";
    resolution: "Resolution (when closing)", "关闭原因（关闭时填写）";
    save: "Save", "保存";
    report_html: "Report (HTML)", "报告（HTML）";
    report_md: "Report (Markdown)", "报告（Markdown）";
    quarantined: "Quarantined", "已隔离";
    reason: "Reason", "原因";
    add_quarantine: "Quarantine a client", "隔离客户端";
    release: "Release", "解除隔离";
    incident_id: "Incident id (optional)", "事件编号（可选）";
    since_time: "Since", "开始于";
    by: "By", "操作人";
    notice_preview: "Notice page preview", "提示页预览";
    notice_intro: "A quarantined client's browser is sent to the notice page, which says:", "被隔离客户端的浏览器会被引导到提示页，内容如下：";
    entries: "Entries", "条目数";
    source: "Source", "来源";
    last_fetch: "Last successful update", "最近成功更新";
    loaded: "Loaded", "加载时间";
    enabled: "Enabled", "已启用";
    upload: "Upload a list", "上传规则列表";
    upload_file: "File", "文件";
    new_feed: "New feed from a file", "从文件新建规则源";
    kind: "Kind", "类型";
    upload_result: "Upload result", "上传结果";
    accepted: "Accepted", "已接受";
    rejected: "Rejected", "已拒绝";
    skipped: "Skipped (comments, blank)", "已跳过（注释、空行）";
    line: "Line", "行";
    text: "Text", "内容";
    versions: "Versions", "历史版本";
    version: "Version", "版本";
    diff: "Compare", "比较";
    diff_from: "From version", "旧版本";
    diff_to: "To version", "新版本";
    added: "Added", "新增";
    removed: "Removed", "删除";
    restore: "Restore", "恢复";
    check: "Why is this name blocked?", "这个域名为什么被拦截？";
    check_button: "Check", "检查";
    decision: "Decision", "判定";
    overrides: "Overridden by", "被覆盖于";
    publish: "Published lists", "发布的列表";
    lookup: "Look up", "查询";
    at_time: "At (optional)", "时间（可选）";
    first_seen: "First seen", "首次出现";
    last_seen: "Last seen", "最近出现";
    recent_queries: "Recent queries", "最近查询";
    recent_hits: "Recent hits", "最近命中";
    holdings: "Who held the address", "地址占用记录";
    unknown: "unknown", "未知";
    hit_count: "Hits", "命中数";
    chart_max: "max", "最大值";
    narrative: "Account for the report", "报告说明";
    found: "How it was found", "发现经过";
    cause: "Cause", "原因";
    measures: "Measures taken", "处置措施";
    m_disconnected: "disconnected", "断开网络";
    m_cleaned: "cleaned", "清除程序";
    m_reimaged: "reimaged", "重装系统";
    m_warned: "warned", "警告";
    measures_other: "Other measures", "其他措施";
    outcome: "Outcome", "处理结果";
    follow_up: "Follow-up", "后续跟进";
    role_viewer: "viewer", "只读";
    role_investigator: "investigator", "调查员";
    role_feeds: "feeds", "规则维护";
    role_admin: "admin", "管理员";
    st_open: "open", "新建";
    st_investigating: "investigating", "调查中";
    st_identified: "identified", "已识别";
    st_reported: "reported", "已上报";
    st_closed: "closed", "已关闭";
}

impl Labels {
    /// A report measure (the API's word) in this language.
    pub fn measure_name<'a>(&'static self, m: &'a str) -> &'a str {
        match m {
            "disconnected" => self.m_disconnected,
            "cleaned" => self.m_cleaned,
            "reimaged" => self.m_reimaged,
            "warned" => self.m_warned,
            other => other,
        }
    }

    /// A role (the API's word) in this language.
    pub fn role_name<'a>(&'static self, role: &'a str) -> &'a str {
        match role {
            "viewer" => self.role_viewer,
            "investigator" => self.role_investigator,
            "feeds" => self.role_feeds,
            "admin" => self.role_admin,
            other => other,
        }
    }

    /// An incident status (the API's word) in this language; unknown words as they are.
    pub fn status_name<'a>(&'static self, status: &'a str) -> &'a str {
        match status {
            "open" => self.st_open,
            "investigating" => self.st_investigating,
            "identified" => self.st_identified,
            "reported" => self.st_reported,
            "closed" => self.st_closed,
            other => other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accept_language_picks_the_heaviest_language_we_speak() {
        assert_eq!(
            Lang::from_accept_language("zh-CN,zh;q=0.9,en;q=0.8"),
            Lang::ZhCn
        );
        assert_eq!(Lang::from_accept_language("fr,en;q=0.5,zh;q=0.4"), Lang::En);
        assert_eq!(Lang::from_accept_language("de"), Lang::En);
        assert_eq!(Lang::from_accept_language(""), Lang::En);
    }
}
