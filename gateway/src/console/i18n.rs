//! The console's languages: French, Arabic (right to left) and English, chosen by the
//! `?lang=` switch (remembered in a cookie), else by the browser's `Accept-Language`, else
//! French. Every message is a [`Msg`] with its three texts side by side, so a message
//! without a translation does not compile.

/// A language of the console.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lang {
    Fr,
    Ar,
    En,
}

impl Lang {
    pub const ALL: [Lang; 3] = [Lang::Fr, Lang::Ar, Lang::En];

    pub fn code(self) -> &'static str {
        match self {
            Self::Fr => "fr",
            Self::Ar => "ar",
            Self::En => "en",
        }
    }

    /// The language's own name, for the switch.
    pub fn name(self) -> &'static str {
        match self {
            Self::Fr => "Français",
            Self::Ar => "العربية",
            Self::En => "English",
        }
    }

    /// The writing direction (`dir` of the page).
    pub fn dir(self) -> &'static str {
        match self {
            Self::Ar => "rtl",
            Self::Fr | Self::En => "ltr",
        }
    }

    pub fn from_code(code: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|l| l.code() == code)
    }

    /// The language for a request: the switch, the cookie, the browser's preference,
    /// French.
    pub fn pick(switch: Option<&str>, cookie: Option<&str>, accept: Option<&str>) -> Self {
        switch
            .and_then(Self::from_code)
            .or_else(|| cookie.and_then(Self::from_code))
            .or_else(|| accept.and_then(Self::from_accept_language))
            .unwrap_or(Self::Fr)
    }

    /// The first language of an `Accept-Language` header we have, by its weights.
    fn from_accept_language(header: &str) -> Option<Self> {
        let mut best: Option<(u16, Self)> = None;
        for item in header.split(',').take(16) {
            let mut parts = item.trim().split(';');
            let tag = parts.next().unwrap_or("").trim().to_ascii_lowercase();
            let primary = tag.split('-').next().unwrap_or("");
            let weight = parts
                .find_map(|p| p.trim().strip_prefix("q="))
                .map_or(1000, |q| {
                    q.parse::<f32>()
                        .map_or(0, |q| (q.clamp(0.0, 1.0) * 1000.0) as u16)
                });
            if let Some(lang) = Self::from_code(primary)
                && weight > 0
                && best.is_none_or(|(w, _)| weight > w)
            {
                best = Some((weight, lang));
            }
        }
        best.map(|(_, l)| l)
    }

    pub fn t(self, m: Msg) -> &'static str {
        let [en, fr, ar] = m.texts();
        match self {
            Self::En => en,
            Self::Fr => fr,
            Self::Ar => ar,
        }
    }
}

macro_rules! messages {
    ($($name:ident => [$en:literal, $fr:literal, $ar:literal],)*) => {
        /// A message of the console.
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub enum Msg { $($name,)* }

        impl Msg {
            pub const ALL: &'static [Msg] = &[$(Msg::$name,)*];

            /// English, French, Arabic.
            pub fn texts(self) -> [&'static str; 3] {
                match self { $(Msg::$name => [$en, $fr, $ar],)* }
            }
        }
    };
}

messages! {
    Console => ["ztgw console", "Console ztgw", "وحدة تحكم ztgw"],
    SkipToContent => ["Skip to content", "Aller au contenu", "الانتقال إلى المحتوى"],
    MainMenu => ["Main menu", "Menu principal", "القائمة الرئيسية"],
    Language => ["Language", "Langue", "اللغة"],
    SignedInAs => ["Signed in as", "Connecté en tant que", "متصل باسم"],
    RoleSecurityUnit => ["security unit", "unité de sécurité", "وحدة الأمن"],
    RoleAuditor => ["auditor", "auditeur", "مدقق"],
    Overview => ["Overview", "Vue d'ensemble", "نظرة عامة"],
    Devices => ["Devices", "Appareils", "الأجهزة"],
    Employees => ["Employees", "Agents", "الموظفون"],
    Sessions => ["Sessions", "Sessions", "الجلسات"],
    Incidents => ["Incidents", "Incidents", "الحوادث"],
    Overrides => ["Schedule overrides", "Dérogations d'horaire", "استثناءات الجدول الزمني"],
    Policy => ["Policy", "Politique d'accès", "سياسة الولوج"],
    Journal => ["Journal", "Journal", "السجل"],
    Reports => ["Reports", "Rapports", "التقارير"],
    SessionsNow => ["Sessions now", "Sessions en cours", "الجلسات الجارية"],
    HereAndElsewhere => ["on this gateway / on the others", "sur cette passerelle / sur les autres", "على هذه البوابة / على البوابات الأخرى"],
    PendingApproval => ["Devices awaiting approval", "Appareils en attente d'approbation", "أجهزة في انتظار الموافقة"],
    RefusalsToday => ["Refusals today, by reason", "Refus aujourd'hui, par motif", "حالات الرفض اليوم حسب السبب"],
    NoRefusals => ["No refusal today.", "Aucun refus aujourd'hui.", "لا يوجد رفض اليوم."],
    JournalStatus => ["Journal", "Journal", "السجل"],
    JournalIntact => ["intact", "intact", "سليم"],
    JournalDamaged => ["DAMAGED", "ENDOMMAGÉ", "تالف"],
    Records => ["records", "enregistrements", "سجلات"],
    LastCheckpoint => ["last signed checkpoint at", "dernier point de contrôle signé à", "آخر نقطة تحقق موقعة في"],
    NoCheckpoint => ["no signed checkpoint yet", "pas encore de point de contrôle signé", "لا توجد نقطة تحقق موقعة بعد"],
    Reason => ["Reason", "Motif", "السبب"],
    Count => ["Count", "Nombre", "العدد"],
    Device => ["Device", "Appareil", "الجهاز"],
    Employee => ["Employee", "Agent", "الموظف"],
    Role => ["Role", "Rôle", "الدور"],
    Status => ["Status", "Statut", "الحالة"],
    Hostname => ["Computer", "Ordinateur", "الحاسوب"],
    Enrolled => ["Enrolled", "Inscrit le", "تاريخ التسجيل"],
    Schedule => ["Schedule", "Horaire", "الجدول الزمني"],
    Reference => ["Authorisation reference", "Référence de l'autorisation", "مرجع الترخيص"],
    ValidDays => ["Valid for (days)", "Validité (jours)", "مدة الصلاحية (أيام)"],
    Optional => ["optional", "facultatif", "اختياري"],
    Invite => ["Invite a device", "Inviter un appareil", "دعوة جهاز"],
    InviteButton => ["Create the invitation", "Créer l'invitation", "إنشاء الدعوة"],
    InvitationShownOnce => ["The invitation is shown once: give it to the employee now (copy it, or let them scan the code). It is not kept in readable form.", "L'invitation n'est affichée qu'une fois : remettez-la à l'agent maintenant (copiez-la ou faites scanner le code). Elle n'est pas conservée en clair.", "تعرض الدعوة مرة واحدة فقط: سلّمها للموظف الآن (انسخها أو دعه يمسح الرمز). لا يُحتفظ بها بشكل مقروء."],
    Invitation => ["Invitation", "Invitation", "الدعوة"],
    Expires => ["Expires", "Expire le", "تنتهي في"],
    QrCode => ["QR code of the invitation", "Code QR de l'invitation", "رمز QR للدعوة"],
    Approve => ["Approve", "Approuver", "الموافقة"],
    Revoke => ["Revoke", "Révoquer", "إلغاء"],
    Unlock => ["Lift the second-factor lockout", "Lever le blocage du second facteur", "رفع حظر العامل الثاني"],
    Reinstate => ["Reinstate", "Rétablir", "إعادة التفعيل"],
    Note => ["Note", "Note", "ملاحظة"],
    Confirm => ["I confirm: this takes access away at once", "Je confirme : l'accès est retiré immédiatement", "أؤكد: يُسحب الولوج فورًا"],
    ConfirmNeeded => ["Tick the confirmation box to do this.", "Cochez la case de confirmation pour effectuer cette action.", "ضع علامة في خانة التأكيد للقيام بهذا الإجراء."],
    Details => ["Details", "Détails", "التفاصيل"],
    Certificates => ["Certificates", "Certificats", "الشهادات"],
    Serial => ["Serial", "Numéro de série", "الرقم التسلسلي"],
    ValidUntil => ["Valid until", "Valide jusqu'au", "صالح حتى"],
    None_ => ["None.", "Aucun.", "لا شيء."],
    Started => ["Started", "Début", "البداية"],
    EndsAt => ["Ends at", "Fin prévue", "النهاية المتوقعة"],
    TunnelAddress => ["Tunnel address", "Adresse dans le tunnel", "العنوان داخل النفق"],
    Gateway => ["Gateway", "Passerelle", "البوابة"],
    EndSession => ["End the session", "Mettre fin à la session", "إنهاء الجلسة"],
    ReportIncident => ["Report an incident", "Signaler un incident", "الإبلاغ عن حادث"],
    IncidentHelp => ["Give a device, or an employee (all their devices are revoked).", "Indiquez un appareil, ou un agent (tous ses appareils sont révoqués).", "حدد جهازًا أو موظفًا (تُلغى جميع أجهزته)."],
    Kind => ["Kind", "Nature", "النوع"],
    RecentIncidents => ["Incidents reported", "Incidents signalés", "الحوادث المبلغ عنها"],
    Time => ["Time", "Heure", "الوقت"],
    Operator => ["Operator", "Opérateur", "المشغّل"],
    Target => ["For", "Pour", "لـ"],
    Until => ["Until", "Jusqu'au", "حتى"],
    AddOverride => ["Allow telework outside the schedule", "Autoriser le télétravail hors horaire", "السماح بالعمل عن بعد خارج الجدول"],
    OverrideHelp => ["Give a role or an employee, and until when (gateway time).", "Indiquez un rôle ou un agent, et jusqu'à quand (heure de la passerelle).", "حدد دورًا أو موظفًا، وإلى متى (بتوقيت البوابة)."],
    Save => ["Save", "Enregistrer", "حفظ"],
    PolicyInForce => ["Policy in force", "Politique en vigueur", "السياسة السارية"],
    Explain => ["Explain a decision", "Expliquer une décision", "شرح قرار"],
    ExplainButton => ["Explain", "Expliquer", "اشرح"],
    Destination => ["Destination (IP:PORT/tcp)", "Destination (IP:PORT/tcp)", "الوجهة (IP:PORT/tcp)"],
    At => ["At (gateway time, empty: now)", "À (heure de la passerelle, vide : maintenant)", "في (بتوقيت البوابة، فارغ: الآن)"],
    Allowed => ["Allowed", "Autorisé", "مسموح"],
    Refused => ["Refused", "Refusé", "مرفوض"],
    Diff => ["Compare with a proposal", "Comparer avec une proposition", "المقارنة مع مقترح"],
    DiffButton => ["Compare", "Comparer", "قارن"],
    ProposalFile => ["Proposed policy file (policy.toml)", "Fichier de la politique proposée (policy.toml)", "ملف السياسة المقترحة (policy.toml)"],
    Proposal => ["or paste it here", "ou collez-la ici", "أو الصقها هنا"],
    NoChange => ["No change in access.", "Aucun changement d'accès.", "لا تغيير في الولوج."],
    Search => ["Search", "Rechercher", "بحث"],
    EventType => ["Event type", "Type d'événement", "نوع الحدث"],
    From => ["From (YYYY-MM-DD)", "Du (AAAA-MM-JJ)", "من (YYYY-MM-DD)"],
    To => ["To (YYYY-MM-DD)", "Au (AAAA-MM-JJ)", "إلى (YYYY-MM-DD)"],
    Verify => ["Verify the journal", "Vérifier le journal", "التحقق من السجل"],
    ExportCsv => ["Export as CSV", "Exporter en CSV", "تصدير بصيغة CSV"],
    Seq => ["No.", "N°", "رقم"],
    Type => ["Type", "Type", "النوع"],
    Detail => ["Detail", "Détail", "التفاصيل"],
    Shown => ["Shown: the latest", "Affichés : les derniers", "المعروض: الأحدث"],
    Matching => ["of", "sur", "من"],
    VerifyResult => ["Verification", "Vérification", "نتيجة التحقق"],
    Segments => ["segments", "segments", "مقاطع"],
    Checkpoints => ["signed checkpoints", "points de contrôle signés", "نقاط تحقق موقعة"],
    Month => ["Month (YYYY-MM)", "Mois (AAAA-MM)", "الشهر (YYYY-MM)"],
    Show => ["Show", "Afficher", "عرض"],
    HoursAgainstSchedule => ["Telework hours against schedule", "Heures de télétravail par rapport à l'horaire", "ساعات العمل عن بعد مقارنة بالجدول"],
    Connected => ["Connected (h)", "Connecté (h)", "متصل (س)"],
    Scheduled => ["Scheduled (h)", "Prévu (h)", "المقرر (س)"],
    OutsideSchedule => ["Outside schedule (h)", "Hors horaire (h)", "خارج الجدول (س)"],
    OutOfHoursAttempts => ["Out-of-hours attempts", "Tentatives hors horaire", "محاولات خارج الأوقات"],
    PostureCompliance => ["Posture compliance per day", "Conformité du poste par jour", "امتثال الجهاز حسب اليوم"],
    Compliant => ["Compliant checks (%)", "Contrôles conformes (%)", "الفحوصات المطابقة (%)"],
    Checks => ["Checks", "Contrôles", "الفحوصات"],
    Date => ["Date", "Date", "التاريخ"],
    RefusalsByReason => ["Refusals by reason", "Refus par motif", "حالات الرفض حسب السبب"],
    ReportNeedsCheckpoint => ["The journal has no signed checkpoint yet: reports are computed from a signed checkpoint.", "Le journal n'a pas encore de point de contrôle signé : les rapports sont calculés à partir d'un point de contrôle signé.", "لا يحتوي السجل بعد على نقطة تحقق موقعة: تُحسب التقارير انطلاقًا من نقطة تحقق موقعة."],
    Done => ["Done", "Fait", "تم"],
    Back => ["Back", "Retour", "رجوع"],
    ErrorTitle => ["That did not work", "L'action n'a pas abouti", "لم يتم الإجراء"],
    Forbidden => ["Not allowed", "Non autorisé", "غير مسموح"],
    AuditorsMayNotAct => ["Auditors see and export; only a security unit may act. The attempt is recorded in the journal.", "Les auditeurs consultent et exportent ; seule une unité de sécurité peut agir. La tentative est consignée au journal.", "يطّلع المدققون ويصدّرون فقط؛ وحدها وحدة الأمن يمكنها التصرف. سُجلت المحاولة في السجل."],
    CsrfRefused => ["This form is out of date or did not come from the console. Reload the page and try again. The attempt is recorded in the journal.", "Ce formulaire est périmé ou ne vient pas de la console. Rechargez la page et recommencez. La tentative est consignée au journal.", "هذا النموذج منتهي الصلاحية أو لم يصدر عن وحدة التحكم. أعد تحميل الصفحة وحاول مجددًا. سُجلت المحاولة في السجل."],
    NoCertificate => ["Sign-in needs your operator certificate. Import the PKCS#12 file the security unit gave you into your browser, then reload this page.", "La connexion demande votre certificat d'opérateur. Importez dans votre navigateur le fichier PKCS#12 remis par l'unité de sécurité, puis rechargez la page.", "يتطلب الدخول شهادة المشغّل الخاصة بك. استورد ملف PKCS#12 الذي سلمته لك وحدة الأمن إلى متصفحك ثم أعد تحميل الصفحة."],
    NotOperatorCertificate => ["This certificate is not an operator's (a device's or an API auditor's certificate does not open the console).", "Ce certificat n'est pas celui d'un opérateur (le certificat d'un appareil ou d'un auditeur de l'API n'ouvre pas la console).", "هذه الشهادة ليست شهادة مشغّل (شهادة الجهاز أو مدقق الواجهة البرمجية لا تفتح وحدة التحكم)."],
    CertificateNotCurrent => ["This operator certificate is revoked or no longer current. Ask the security unit for a new one.", "Ce certificat d'opérateur est révoqué ou n'est plus en vigueur. Demandez-en un nouveau à l'unité de sécurité.", "شهادة المشغّل هذه ملغاة أو لم تعد سارية. اطلب شهادة جديدة من وحدة الأمن."],
    NotFound => ["No such page.", "Cette page n'existe pas.", "هذه الصفحة غير موجودة."],
    BadForm => ["The form could not be read", "Le formulaire n'a pas pu être lu", "تعذرت قراءة النموذج"],
    TooLarge => ["The form is too large.", "Le formulaire est trop volumineux.", "النموذج كبير جدًا."],
    Unavailable => ["The gateway cannot answer this now", "La passerelle ne peut pas répondre pour l'instant", "لا يمكن للبوابة الإجابة الآن"],
    AllEvents => ["all", "tous", "الكل"],
    StatusPending => ["awaiting approval", "en attente d'approbation", "في انتظار الموافقة"],
    StatusActive => ["active", "actif", "نشط"],
    StatusRevoked => ["revoked", "révoqué", "ملغى"],
    StatusDecommissioned => ["decommissioned", "restitué", "مسترجع"],
    NoRefusalsInPeriod => ["No refusal in this period.", "Aucun refus sur cette période.", "لا يوجد رفض خلال هذه الفترة."],
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_message_has_its_three_texts() {
        for m in Msg::ALL {
            for (lang, text) in ["en", "fr", "ar"].iter().zip(m.texts()) {
                assert!(!text.trim().is_empty(), "{m:?} has no {lang} text");
            }
        }
    }

    #[test]
    fn the_language_is_the_switch_then_the_cookie_then_the_browser_then_french() {
        for (switch, cookie, accept, expected) in [
            (Some("ar"), Some("en"), Some("fr"), Lang::Ar),
            (None, Some("en"), Some("fr"), Lang::En),
            (Some("xx"), None, Some("ar-MA,fr;q=0.8"), Lang::Ar),
            (None, None, Some("de-DE,en;q=0.5,fr;q=0.7"), Lang::Fr),
            (None, None, Some("en-GB;q=0.2, ar;q=0"), Lang::En),
            (None, None, Some("de, nl"), Lang::Fr),
            (None, None, None, Lang::Fr),
        ] {
            assert_eq!(
                Lang::pick(switch, cookie, accept),
                expected,
                "{switch:?} {cookie:?} {accept:?}"
            );
        }
        assert_eq!(Lang::Ar.dir(), "rtl");
        assert_eq!(Lang::Fr.dir(), "ltr");
    }
}
