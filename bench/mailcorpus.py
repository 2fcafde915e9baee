# ruff: noqa: RUF001  # the Russian vocabulary is Cyrillic on purpose
"""A generated, deterministic mail corpus for the mail store benchmark (bench/mail.py).

``MailCorpus(seed).messages(count)`` yields the same messages for the same seed, in the
order they arrived. What they are made of, so that the store does the work a real mailbox
makes it do:

- Threads: about 45% of messages reply to a recent thread, with In-Reply-To, References
  (the chain, capped like mail clients do) and a "Re: " subject in the thread's language;
  a thread gathers up to ``MAX_THREAD_LENGTH`` messages between a few participants, and a
  reply quotes the start of the message it answers.
- Structure: text/plain alone, multipart/alternative (text/plain and text/html), and
  multipart/mixed with one to three attachments, some text/* (CSV, logs, calendars) and
  some binary (PDF, PNG, JPEG, ZIP; random, so incompressible), base64-encoded.
- Charsets: UTF-8 (English, with some accents and symbols), ISO-8859-1 (French and
  German, quoted-printable), KOI8-R (Russian, 8bit or base64) and Shift_JIS (Japanese,
  base64), with the Subject and display names as RFC 2047 encoded-words in the same charset.
- Sizes from 2 KB to 5 MB, mostly small: ``SIZE_TIERS`` (log-uniform inside each tier);
  about 18 KB a message on average, so 100,000 messages are about 1.8 GB.
- A rare word, ``SEARCH_WORD``, in the first paragraphs of the body of about ``SEARCH_RATE``
  of the messages (never a prefix of another word of the corpus, never split by a line
  break), for the full-text search measurement.
- Mailboxes and keywords: the account owner's own messages go to "sent"; the others to
  "inbox" (80%) or "archive", most of them read ($seen), a few $flagged or $answered.

Each message carries a Received header field with its arrival date (so the server derives
receivedAt from it, RFC 8621 §4.8), one every few minutes from ``START``.
"""

from __future__ import annotations

import base64
import binascii
import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

SEARCH_WORD = "zephyrquill"
SEARCH_RATE = 0.01
START = datetime(2024, 1, 1, 8, 0, 0, tzinfo=UTC)
MEAN_ARRIVAL_GAP_S = 300
REPLY_RATE = 0.45
MAX_THREAD_LENGTH = 30
MAX_REFERENCES = 12
OPEN_THREADS = 300
OWN_MESSAGE_RATE = 0.12
DOMAIN = "example.org"

# (share of messages, smallest, largest) total message size in octets.
SIZE_TIERS = (
    (0.864, 2_048, 10_240),
    (0.120, 10_240, 102_400),
    (0.015, 102_400, 1_048_576),
    (0.001, 1_048_576, 5_242_880),
)
# (charset, language, share, body Content-Transfer-Encodings, encoded-word encoding)
CHARSETS = (
    ("utf-8", "en", 0.65, ("8bit", "quoted-printable"), "Q"),
    ("iso-8859-1", "fr", 0.08, ("quoted-printable",), "Q"),
    ("iso-8859-1", "de", 0.07, ("quoted-printable",), "Q"),
    ("koi8-r", "ru", 0.12, ("8bit", "base64"), "B"),
    ("shift_jis", "ja", 0.08, ("base64",), "B"),
)

# -- Vocabulary (written for this benchmark) ---------------------------------------------------

_WORDS = {
    "en": (
        "the of and to in for on with as by at from about meeting project budget report review "
        "draft final update schedule customer invoice payment contract proposal team office "
        "morning afternoon tomorrow yesterday week month quarter release version server "
        "database network backup storage migration deadline agenda minutes notes question "
        "answer please thanks regards attached document spreadsheet figures numbers estimate "
        "forecast planning travel hotel flight conference workshop training holiday lunch "
        "dinner coffee garden kitchen weather rain sunny winter summer autumn spring family "
        "children school library museum concert ticket train station airport harbour bridge "
        "river mountain village city street market bakery recipe chapter novel poem letter "
        "photograph camera picture colour design layout feedback comment suggestion decision "
        "approval signature delivery package shipment warehouse supplier order receipt refund "
        "account password security access permission support ticket issue problem solution "
        "improvement performance latency throughput capacity license renewal subscription "
        "newsletter announcement invitation reminder confirmation cancellation café naïve "
        "résumé déjà façade coördinate €100 £40 — “quoted” ✓ done ok good great fine soon later "
        "maybe certainly probably quickly carefully together separately already again still"
    ).split(),
    "fr": (
        "le la les de des du et pour avec dans sur par une un réunion projet budget rapport "
        "révision brouillon calendrier client facture paiement contrat proposition équipe "
        "bureau matin après-midi demain hier semaine mois trimestre version serveur données "
        "réseau sauvegarde échéance ordre du jour compte rendu question réponse merci "
        "cordialement pièce jointe tableau chiffres prévision voyage hôtel vol conférence "
        "atelier formation vacances déjeuner dîner café jardin cuisine météo pluie été hiver "
        "automne printemps famille enfants école bibliothèque musée concert billet gare "
        "aéroport pont rivière montagne village ville rue marché boulangerie recette chapitre "
        "roman poème lettre photo caméra couleur décision approbation livraison commande reçu "
        "remboursement sécurité accès problème solution amélioration abonnement invitation "
        "rappel confirmation très bien déjà à côté où ça été fête élève théâtre forêt château"
    ).split(),
    "de": (
        "der die das und zu im für mit auf von bei aus Besprechung Projekt Haushalt Bericht "
        "Entwurf Zeitplan Kunde Rechnung Zahlung Vertrag Angebot Mannschaft Büro Morgen "
        "Nachmittag morgen gestern Woche Monat Quartal Version Server Datenbank Netzwerk "
        "Sicherung Frist Tagesordnung Protokoll Frage Antwort bitte danke Grüße Anhang Tabelle "
        "Zahlen Schätzung Prognose Reise Hotel Flug Konferenz Schulung Urlaub Mittagessen "
        "Abendessen Kaffee Garten Küche Wetter Regen Sommer Winter Herbst Frühling Familie "
        "Kinder Schule Bücherei Museum Konzert Fahrkarte Bahnhof Flughafen Brücke Fluss Berg "
        "Dorf Stadt Straße Markt Bäckerei Rezept Kapitel Roman Gedicht Brief Kamera Farbe "
        "Entscheidung Genehmigung Lieferung Bestellung Quittung Erstattung Sicherheit Zugriff "
        "Lösung Verbesserung Abonnement Einladung Erinnerung Bestätigung schön größer über "
        "Übersicht Grüß Maß Fuß weiß heißt Straßenbahn Öffnungszeiten Änderung fünf zwölf"
    ).split(),
    "ru": (
        "и в на с по для от до из о встреча проект бюджет отчёт обзор черновик расписание "
        "клиент счёт оплата договор предложение команда офис утро день завтра вчера неделя "
        "месяц квартал версия сервер база данных сеть резервная копия срок повестка протокол "
        "вопрос ответ пожалуйста спасибо с уважением вложение таблица цифры прогноз поездка "
        "гостиница рейс конференция обучение отпуск обед ужин кофе сад кухня погода дождь "
        "лето зима осень весна семья дети школа библиотека музей концерт билет вокзал "
        "аэропорт мост река гора деревня город улица рынок пекарня рецепт глава роман "
        "стихотворение письмо фотография цвет решение согласование доставка заказ возврат "
        "безопасность доступ проблема решение улучшение подписка приглашение напоминание "
        "подтверждение хорошо отлично скоро позже ещё уже вместе ёлка объём съезд"
    ).split(),
    "ja": (
        "会議 プロジェクト 予算 報告書 確認 下書き 予定 お客様 請求書 支払い 契約 提案 チーム "
        "事務所 明日 昨日 今週 来月 四半期 バージョン サーバー データベース ネットワーク 締め切り "
        "議題 議事録 質問 回答 よろしくお願いします ありがとうございます 添付ファイル 資料 見積もり "
        "出張 ホテル 飛行機 研修 休暇 昼食 夕食 コーヒー 庭 台所 天気 雨 夏 冬 秋 春 家族 子供 "
        "学校 図書館 博物館 音楽会 切符 駅 空港 橋 川 山 村 町 市場 パン屋 料理 小説 手紙 写真 "
        "色 決定 承認 配送 注文 返金 安全 問題 解決 改善 購読 招待 お知らせ 確認済み です ます "
        "について の件 を お願いします いたします でした ください"
    ).split(),
}
_GREETINGS = {
    "en": ("Hi {name},", "Hello {name},", "Dear {name},", "Good morning {name},"),
    "fr": ("Bonjour {name},", "Cher {name},", "Salut {name},"),
    "de": ("Hallo {name},", "Liebe Grüße an {name},", "Guten Tag {name},"),
    "ru": ("Привет, {name}!", "Здравствуйте, {name}!", "Добрый день, {name}!"),
    "ja": ("{name}様", "{name}さん、こんにちは。", "{name}様、お世話になっております。"),
}
_SIGN_OFFS = {
    "en": ("Best regards,", "Thanks,", "Cheers,", "Kind regards,"),
    "fr": ("Cordialement,", "Bien à vous,", "À bientôt,"),
    "de": ("Viele Grüße,", "Mit freundlichen Grüßen,", "Bis bald,"),
    "ru": ("С уважением,", "Спасибо,", "До встречи,"),
    "ja": ("よろしくお願いいたします。", "以上です。", "ありがとうございました。"),
}
_REPLY_PREFIX = {"en": "Re: ", "fr": "Re : ", "de": "AW: ", "ru": "Re: ", "ja": "Re: "}
_NAMES = {
    "en": (
        "Alice Walker", "Bob Fraser", "Carol Nguyen", "David O'Brien", "Emma Clarke", "Frank Miller",
        "Grace Hopper-Lee", "Henry Ford", "Isla Murray", "Jack Turner", "Karen Smith", "Liam Patel",
        "Mia Johnson", "Noah Brown", "Olivia Davis", "Peter Wright", "Quinn Taylor", "Rachel Green",
    ),
    "fr": (
        "Amélie Poulain", "Benoît Lefèvre", "Céline Dubois", "Élodie Mercier", "François Girard",
        "Hélène Fabre", "Jérôme Roux", "Léa Fournier", "Noël Bonnet", "Sébastien Garçon",
    ),
    "de": (
        "Jürgen Müller", "Bärbel Schäfer", "Günther Weiß", "Jörg Köhler", "Käthe Groß", "Uwe Schröder",
        "Sören Böhm", "Ännchen Fuß", "Lutz Krüger", "Maximilian Hoß",
    ),
    "ru": (
        "Иван Петров", "Мария Иванова", "Алексей Смирнов", "Ольга Кузнецова", "Дмитрий Соколов",
        "Елена Попова", "Сергей Лебедев", "Наталья Козлова", "Андрей Новиков", "Татьяна Морозова",
    ),
    "ja": ("山田 太郎", "佐藤 花子", "鈴木 一郎", "高橋 美咲", "田中 健太", "伊藤 さくら", "渡辺 翔", "中村 陽子"),
}  # fmt: skip
_LOGINS = {
    "en": "alice bob carol david emma frank grace henry isla jack karen liam mia noah olivia peter quinn rachel",
    "fr": "amelie benoit celine elodie francois helene jerome lea noel sebastien",
    "de": "juergen baerbel guenther joerg kaethe uwe soeren aennchen lutz max",
    "ru": "ivan maria alexey olga dmitry elena sergey natalia andrey tatiana",
    "ja": "taro hanako ichiro misaki kenta sakura sho yoko",
}
_DOMAINS = {
    "en": ("example.com", "example.net", "mail.example.co.uk"),
    "fr": ("exemple.fr", "courriel.example.fr"),
    "de": ("beispiel.de", "post.example.de"),
    "ru": ("primer.ru", "pochta.example.ru"),
    "ja": ("rei.example.jp", "mail.example.co.jp"),
}
_MAILERS = ("Thunderbird 128.4", "Apple Mail (16.0)", "Microsoft Outlook 16.0", "Roundcube 1.6", "K-9 Mail 6.8")
_TEXT_ATTACHMENTS = (("text/csv", "csv"), ("text/plain", "log"), ("text/calendar", "ics"))
_BINARY_ATTACHMENTS = (
    ("application/pdf", "pdf", b"%PDF-1.7\n"),
    ("image/png", "png", b"\x89PNG\r\n\x1a\n"),
    ("image/jpeg", "jpg", b"\xff\xd8\xff\xe0\x00\x10JFIF\x00"),
    ("application/zip", "zip", b"PK\x03\x04"),
)
_ATTACHMENT_NAMES = {
    "en": ("report", "figures", "invoice", "photo", "minutes", "slides", "budget plan"),
    "fr": ("rapport", "facture", "procès-verbal", "photo été", "résumé"),
    "de": ("Bericht", "Rechnung", "Übersicht", "Präsentation", "Maßnahmen"),
    "ru": ("отчёт", "счёт", "протокол", "фото"),
    "ja": ("報告書", "請求書", "議事録", "写真"),
}


@dataclass(frozen=True)
class CorpusMessage:
    index: int
    raw: bytes
    mailbox: str  # the role of the mailbox it goes to: inbox, archive or sent
    keywords: dict[str, bool]
    received_at: datetime
    has_search_word: bool
    charset: str
    kind: str  # plain, alternative, mixed
    is_reply: bool
    attachments: int


@dataclass
class _Thread:
    language: str
    charset: str
    subject: str
    participants: list[tuple[str, str]]  # (display name, address)
    message_ids: list[str]
    last_text: str
    length: int = 1


@dataclass
class MailCorpus:
    """A deterministic stream of messages: the same seed gives the same octets."""

    seed: int = 1
    me: tuple[str, str] = ("Bench User", "bench@example.com")
    _threads: list[_Thread] = field(default_factory=list, repr=False)
    _plan: random.Random = field(init=False, repr=False)
    _now: datetime = START
    _next_index: int = 0

    def __post_init__(self) -> None:
        self._plan = random.Random(self.seed)

    def messages(self, count: int) -> Iterator[CorpusMessage]:
        """The next ``count`` messages of the stream."""
        for _ in range(count):
            yield self.next_message()

    def next_message(self) -> CorpusMessage:
        index = self._next_index
        self._next_index += 1
        plan = self._plan
        self._now += timedelta(seconds=max(1, int(plan.expovariate(1 / MEAN_ARRIVAL_GAP_S))))
        # The message's own content comes from its own generator, so that what is decided
        # here (threads, dates) and what is written there don't shift each other.
        rng = random.Random(self.seed * 1_000_003 + index)
        thread = None
        if self._threads and plan.random() < REPLY_RATE:
            # Mostly recent threads: the square pulls the choice towards the end.
            pick = int(len(self._threads) * (1 - plan.random() ** 2))
            thread = self._threads[min(pick, len(self._threads) - 1)]
        own = plan.random() < OWN_MESSAGE_RATE
        has_word = plan.random() < SEARCH_RATE
        size = _target_size(plan)
        if thread is None:
            charset, language = _pick_charset(plan)
            participants = [_person(rng, language) for _ in range(rng.choice((1, 1, 2, 3)))]
            thread = _Thread(
                language=language,
                charset=charset,
                subject=_subject(rng, language),
                participants=participants,
                message_ids=[],
                last_text="",
                length=0,
            )
            self._threads.append(thread)
            if len(self._threads) > OPEN_THREADS:
                self._threads.pop(0)
        sender = self.me if own else rng.choice(thread.participants)
        recipients = [self.me] if not own else thread.participants[:3]
        message_id = f"<{index}.{rng.getrandbits(48):012x}@{sender[1].split('@')[1]}>"
        raw, kind, attachments, text = _compose(
            rng,
            index=index,
            thread=thread,
            sender=sender,
            recipients=recipients,
            cc=thread.participants[1:3] if not own and rng.random() < 0.2 else [],
            message_id=message_id,
            date=self._now - timedelta(seconds=rng.randint(2, 40)),
            received=self._now,
            size=size,
            has_word=has_word,
        )
        is_reply = bool(thread.message_ids)
        thread.message_ids.append(message_id)
        thread.last_text = text
        thread.length += 1
        if thread.length >= MAX_THREAD_LENGTH and thread in self._threads:
            self._threads.remove(thread)
        if own:
            mailbox, keywords = "sent", {"$seen": True}
        else:
            mailbox = "inbox" if plan.random() < 0.8 else "archive"
            keywords = {"$seen": True} if plan.random() < 0.85 else {}
            if plan.random() < 0.04:
                keywords["$flagged"] = True
            if is_reply and plan.random() < 0.1:
                keywords["$answered"] = True
        return CorpusMessage(
            index=index,
            raw=raw,
            mailbox=mailbox,
            keywords=keywords,
            received_at=self._now,
            has_search_word=has_word,
            charset=thread.charset,
            kind=kind,
            is_reply=is_reply,
            attachments=attachments,
        )


# -- Choices ---------------------------------------------------------------------------------


def _target_size(rng: random.Random) -> int:
    draw = rng.random()
    for share, low, high in SIZE_TIERS:
        if draw < share:
            return int(low * (high / low) ** rng.random())  # log-uniform
        draw -= share
    return SIZE_TIERS[0][1]


def _pick_charset(rng: random.Random) -> tuple[str, str]:
    draw = rng.random()
    for charset, language, share, _, _ in CHARSETS:
        if draw < share:
            return charset, language
        draw -= share
    return CHARSETS[0][0], CHARSETS[0][1]


def _charset_spec(charset: str, language: str) -> tuple[tuple[str, ...], str]:
    for name, lang, _, encodings, word_encoding in CHARSETS:
        if name == charset and lang == language:
            return encodings, word_encoding
    raise ValueError(charset)


def _person(rng: random.Random, language: str) -> tuple[str, str]:
    number = rng.randrange(len(_NAMES[language]))
    logins = _LOGINS[language].split()
    name, login = _NAMES[language][number], logins[number % len(logins)]
    return name, f"{login}.{rng.randint(1, 99)}@{rng.choice(_DOMAINS[language])}"


def _sentence(rng: random.Random, language: str) -> str:
    words = _WORDS[language]
    if language == "ja":
        return "".join(rng.choices(words, k=rng.randint(4, 9))) + "。"
    chosen = rng.choices(words, k=rng.randint(6, 16))
    text = " ".join(chosen)
    return text[0].upper() + text[1:] + rng.choice(".....?!")


def _subject(rng: random.Random, language: str) -> str:
    words = _WORDS[language]
    if language == "ja":
        return "".join(rng.choices(words, k=rng.randint(2, 4)))
    text = " ".join(rng.choices(words, k=rng.randint(3, 8)))
    return text[0].upper() + text[1:]


def _paragraphs(rng: random.Random, language: str, charset: str, octets: int) -> list[str]:
    """Paragraphs of about ``octets`` octets once encoded in ``charset``."""
    per_char = 2 if language in ("ja",) else 1
    paragraphs: list[str] = []
    total = 0
    while total < octets:
        paragraph = " ".join(_sentence(rng, language) for _ in range(rng.randint(2, 6)))
        if language == "ja":
            paragraph = paragraph.replace(" ", "")
        paragraphs.append(paragraph)
        total += len(paragraph) * per_char + 4
    return paragraphs


def _wrap(paragraph: str, language: str) -> list[str]:
    """Lines of at most ~76 characters (36 for Japanese, which has no spaces: there a line
    ends anywhere but inside a Latin word, such as the search word)."""
    if language == "ja":
        lines, start = [], 0
        while start < len(paragraph):
            end = min(start + 36, len(paragraph))
            while start + 1 < end < len(paragraph) and paragraph[end - 1].isascii() and paragraph[end].isascii():
                end -= 1
            lines.append(paragraph[start:end])
            start = end
        return lines or [""]
    lines, line = [], ""
    for word in paragraph.split(" "):
        if line and len(line) + 1 + len(word) > 76:
            lines.append(line)
            line = word
        else:
            line = f"{line} {word}" if line else word
    lines.append(line)
    return lines


# -- Encoding ----------------------------------------------------------------------------------


def encoded_words(text: str, charset: str, encoding: str) -> str:
    """``text`` as RFC 2047 encoded-words (each at most 75 characters), or as it is when it
    is printable ASCII. Words are split between characters, never inside one."""
    if all(" " <= char <= "~" for char in text):
        return text
    prefix, suffix = f"=?{charset}?{encoding}?", "?="
    room = 75 - len(prefix) - len(suffix)
    words, chunk = [], ""
    for char in text:
        candidate = chunk + char
        if _encoded_length(candidate.encode(charset), encoding) > room and chunk:
            words.append(prefix + _encode_word(chunk.encode(charset), encoding) + suffix)
            chunk = char
        else:
            chunk = candidate
    if chunk:
        words.append(prefix + _encode_word(chunk.encode(charset), encoding) + suffix)
    return "\r\n ".join(words)  # folded: RFC 2047 §2 keeps each line short


def _encoded_length(data: bytes, encoding: str) -> int:
    if encoding == "B":
        return (len(data) + 2) // 3 * 4
    return sum(1 if _q_safe(byte) else 3 for byte in data)


def _q_safe(byte: int) -> bool:
    # RFC 2047 §5 (3): letters, digits and "!*+-/" stand for themselves; space is "_".
    return byte == 0x20 or 0x30 <= byte <= 0x39 or 0x41 <= byte <= 0x5A or 0x61 <= byte <= 0x7A or byte in b"!*+-/"


def _encode_word(data: bytes, encoding: str) -> str:
    if encoding == "B":
        return base64.b64encode(data).decode()
    return "".join("_" if byte == 0x20 else chr(byte) if _q_safe(byte) else f"={byte:02X}" for byte in data)


def _address(name: str, address: str, charset: str, encoding: str) -> str:
    if all(" " <= char <= "~" for char in name):
        if any(char in name for char in "()<>[]:;@\\,.\"'"):
            name = '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'
        return f"{name} <{address}>"
    return f"{encoded_words(name, charset, encoding)} <{address}>"


def _body_octets(text: str, charset: str, transfer: str) -> tuple[bytes, str]:
    """The encoded body and the Content-Transfer-Encoding actually used."""
    data = text.encode(charset, errors="replace")
    if data.isascii():
        return data, "7bit"
    if transfer == "quoted-printable":
        return binascii.b2a_qp(data, istext=True), transfer
    if transfer == "base64":
        return _base64_lines(data), transfer
    return data, transfer


def _base64_lines(data: bytes) -> bytes:
    return base64.encodebytes(data).replace(b"\n", b"\r\n")


def _part(headers: list[str], body: bytes) -> bytes:
    return ("\r\n".join(headers) + "\r\n\r\n").encode("ascii") + body


def _multipart(subtype: str, boundary: str, parts: list[bytes]) -> tuple[str, bytes]:
    delimiter = f"--{boundary}\r\n".encode()
    body = b"".join(delimiter + part + b"\r\n" for part in parts) + f"--{boundary}--\r\n".encode()
    return f'multipart/{subtype}; boundary="{boundary}"', body


def _html(paragraphs: list[str], language: str) -> str:
    lines = [
        "<!DOCTYPE html>",
        f'<html lang="{language}"><head><meta http-equiv="Content-Type" content="text/html">',
        "<style>body{font-family:sans-serif;font-size:14px} p{margin:0 0 1em} .q{color:#555}</style>",
        "</head><body>",
    ]
    for number, paragraph in enumerate(paragraphs):
        text = paragraph.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
        if number % 3 == 1:
            words = text.split(" ", 2)
            if len(words) == 3:
                text = f"{words[0]} <b>{words[1]}</b> {words[2]}"
        lines.extend(_wrap(f'<p class="p{number % 4}">{text}</p>', language))
    lines.append('<p><a href="https://www.example.org/unsubscribe">example.org</a></p></body></html>')
    return "\r\n".join(lines) + "\r\n"


# -- A message -----------------------------------------------------------------------------------


def _compose(
    rng: random.Random,
    *,
    index: int,
    thread: _Thread,
    sender: tuple[str, str],
    recipients: list[tuple[str, str]],
    cc: list[tuple[str, str]],
    message_id: str,
    date: datetime,
    received: datetime,
    size: int,
    has_word: bool,
) -> tuple[bytes, str, int, str]:
    """The octets of one message, its kind, its number of attachments and its own text."""
    language, charset = thread.language, thread.charset
    transfers, word_encoding = _charset_spec(charset, language)
    subject = thread.subject if not thread.message_ids else _REPLY_PREFIX[language] + thread.subject
    headers = [
        f"Return-Path: <{sender[1]}>",
        f"Received: from mx{rng.randint(1, 9)}.{sender[1].split('@')[1]} (mx.{DOMAIN} [192.0.2.{rng.randint(1, 254)}])"
        f"\r\n\tby mail.{DOMAIN} with ESMTPS id {rng.getrandbits(40):010x}\r\n\tfor <bench@example.com>; "
        f"{format_datetime(received)}",
        f"Date: {format_datetime(date)}",
        f"From: {_address(*sender, charset, word_encoding)}",
        "To: " + ",\r\n ".join(_address(*person, charset, word_encoding) for person in recipients),
    ]
    if cc:
        headers.append("Cc: " + ",\r\n ".join(_address(*person, charset, word_encoding) for person in cc))
    headers += [f"Subject: {encoded_words(subject, charset, word_encoding)}", f"Message-ID: {message_id}"]
    if thread.message_ids:
        headers.append(f"In-Reply-To: {thread.message_ids[-1]}")
        chain = thread.message_ids[:1] + thread.message_ids[1:][-(MAX_REFERENCES - 1) :]
        headers.append("References: " + "\r\n ".join(chain))
    headers.append(f"X-Mailer: {rng.choice(_MAILERS)}")
    headers.append("MIME-Version: 1.0")
    header_octets = sum(len(line) + 2 for line in headers) + 200

    # How the size splits between text and attachments.
    if size <= 10_240:
        attachment_count = 1 if rng.random() < 0.06 else 0
        attachment_octets = rng.randint(300, max(301, size // 3)) if attachment_count else 0
    elif size <= 102_400:
        attachment_count = rng.choice((0, 1, 1, 2)) if rng.random() < 0.5 else 0
        attachment_octets = int(size * rng.uniform(0.5, 0.9)) if attachment_count else 0
    else:
        attachment_count = rng.choice((1, 1, 2, 3))
        attachment_octets = int(size * rng.uniform(0.9, 0.98))
    alternative = rng.random() < 0.45
    text_octets = max(size - header_octets - attachment_octets, 600)
    plain_octets = int(text_octets * (0.4 if alternative else 1.0))

    greeting = rng.choice(_GREETINGS[language]).format(name=recipients[0][0].split(" ")[0])
    sign_off = rng.choice(_SIGN_OFFS[language])
    paragraphs = _paragraphs(rng, language, charset, max(plain_octets - 200, 80))
    own_text = paragraphs[0]  # what a reply quotes: before the search word goes in
    if has_word:
        # In the first paragraphs: the index keeps the first 16,000 tokens of a field, and
        # a long Japanese text (a token per character) would push the word past them.
        spot = rng.randrange(min(len(paragraphs), 3))
        paragraphs[spot] = f"{paragraphs[spot]} {SEARCH_WORD} {_sentence(rng, language)}"
    lines = [greeting, ""]
    for paragraph in paragraphs:
        lines += [*_wrap(paragraph, language), ""]
    lines += [sign_off, sender[0]]
    if thread.message_ids and thread.last_text:
        lines += ["", f"On {format_datetime(date - timedelta(hours=3))}, {thread.participants[0][0]} wrote:"]
        lines += ["> " + line for line in _wrap(thread.last_text, language)[:12]]
    plain_text = "\r\n".join(lines) + "\r\n"
    transfer = rng.choice(transfers)
    plain_body, plain_cte = _body_octets(plain_text, charset, transfer)
    plain = _part(
        [f"Content-Type: text/plain; charset={charset}; format=flowed", f"Content-Transfer-Encoding: {plain_cte}"],
        plain_body,
    )
    body_part = plain
    body_type = None
    if alternative:
        html_body, html_cte = _body_octets(_html([greeting, *paragraphs, sign_off], language), charset, transfer)
        html = _part(
            [f"Content-Type: text/html; charset={charset}", f"Content-Transfer-Encoding: {html_cte}"], html_body
        )
        body_type, alternative_body = _multipart(
            "alternative", f"=_alt_{index}_{rng.getrandbits(32):08x}", [plain, html]
        )
        body_part = _part([f"Content-Type: {body_type}"], alternative_body)
    kind = "alternative" if alternative else "plain"

    if attachment_count:
        parts = [body_part]
        share = attachment_octets // attachment_count
        for _ in range(attachment_count):
            parts.append(_attachment(rng, language, charset, word_encoding, share))
        content_type, body = _multipart("mixed", f"=_mix_{index}_{rng.getrandbits(32):08x}", parts)
        headers.append(f"Content-Type: {content_type}")
        kind = "mixed"
    elif alternative:
        headers.append(f"Content-Type: {body_type}")
        body = alternative_body
    else:
        headers += [
            f"Content-Type: text/plain; charset={charset}; format=flowed",
            f"Content-Transfer-Encoding: {plain_cte}",
        ]
        body = plain_body
    raw = _part(headers, body)
    if len(raw) < SIZE_TIERS[0][1]:  # the smallest message is 2 KB: pad with a signature
        pad = "-- \r\n" + "\r\n".join(_sentence(rng, "en") for _ in range(30))
        raw = raw + b"\r\n" + pad.encode("ascii", errors="replace")[: SIZE_TIERS[0][1] - len(raw) + 2] + b"\r\n"
    return raw, kind, attachment_count, own_text


def _attachment(rng: random.Random, language: str, charset: str, word_encoding: str, octets: int) -> bytes:
    """One attachment of about ``octets`` octets once base64-encoded."""
    raw_size = max(octets * 3 // 4, 64)
    base_name = rng.choice(_ATTACHMENT_NAMES[language])
    # Text attachments are kept small (they are indexed for search, like a real server would).
    if raw_size <= 200_000 and rng.random() < 0.4:
        media_type, extension = rng.choice(_TEXT_ATTACHMENTS)
        data = _text_attachment(rng, media_type, language, raw_size).encode("utf-8", errors="replace")
        content_type = f"{media_type}; charset=utf-8"
    else:
        media_type, extension, magic = rng.choice(_BINARY_ATTACHMENTS)
        data = magic + rng.randbytes(max(raw_size - len(magic), 0))
        content_type = media_type
    filename = f"{base_name}.{extension}"
    if all(" " <= char <= "~" for char in filename):
        disposition = f'attachment; filename="{filename}"'
        content_type += f'; name="{filename}"'
    else:
        # RFC 2231 for the disposition parameter; an encoded-word name as many clients send.
        encoded = "".join(chr(byte) if _attribute_char(byte) else f"%{byte:02X}" for byte in filename.encode("utf-8"))
        disposition = f"attachment; filename*=utf-8''{encoded}"
        content_type += f'; name="{encoded_words(filename, charset, word_encoding)}"'
    return _part(
        [f"Content-Type: {content_type}", f"Content-Disposition: {disposition}", "Content-Transfer-Encoding: base64"],
        _base64_lines(data),
    )


def _attribute_char(byte: int) -> bool:
    # RFC 2231 §7 attribute-char, narrowed to letters, digits and ".-_".
    return byte < 0x80 and (chr(byte).isalnum() or chr(byte) in ".-_")


def _text_attachment(rng: random.Random, media_type: str, language: str, octets: int) -> str:
    lines: list[str] = []
    total = 0
    if media_type == "text/calendar":
        lines = ["BEGIN:VCALENDAR", "VERSION:2.0", "PRODID:-//bench//corpus//EN", "BEGIN:VEVENT"]
        lines += [f"UID:{rng.getrandbits(64):016x}@{DOMAIN}", "DTSTART:20240301T090000Z", "DTEND:20240301T100000Z"]
        lines += [f"SUMMARY:{_subject(rng, language)}", f"DESCRIPTION:{_sentence(rng, language)}"]
        lines += ["END:VEVENT", "END:VCALENDAR"]
        return "\r\n".join(lines) + "\r\n"
    while total < octets:
        if media_type == "text/csv":
            line = ",".join([str(rng.randint(1, 99999)), rng.choice(_WORDS[language]), f"{rng.uniform(0, 1e4):.2f}"])
        else:
            stamp = f"2024-03-{rng.randint(1, 28):02d} {rng.randint(0, 23):02d}:{rng.randint(0, 59):02d}"
            line = f"{stamp} INFO {_sentence(rng, 'en')}"
        lines.append(line)
        total += len(line) + 2
    return "\r\n".join(lines) + "\r\n"
