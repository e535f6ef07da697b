"""Every stream, consumer group and key redalert uses, named once.

Nothing else in the code builds a Redis key: the data layout is readable here at a glance.
All names live under one namespace, so several deployments (or test runs) can share a Redis.
"""

from dataclasses import dataclass

# Stream names, without the namespace. Entries are `{"data": <model JSON>}`.
POSTS = "posts"  # Post — work stream, read by classify
COMMANDS = "commands"  # IncidentCommand — work stream, read by classify
CLASSIFIED = "classified"  # Classification — audit, capped
INCIDENT_EVENTS = "incident-events"  # IncidentEvent — work stream, read by notify
DELIVERIES = "deliveries"  # Delivery — audit, capped
DEADLETTER = "deadletter"  # DeadLetter — read by operators
ARCHIVE = "incidents-archive"  # ArchivedIncident — expired incidents' summaries, capped

WORK_STREAMS = (POSTS, COMMANDS, INCIDENT_EVENTS)
AUDIT_STREAMS = (CLASSIFIED, DELIVERIES)

# Consumer groups.
CLASSIFY_GROUP = "classify"
NOTIFY_GROUP = "notify"
# A second group on incident-events: escalation policies start and stop on them (notify runs it).
ESCALATE_GROUP = "escalate"

# Which group consumes which work stream.
GROUPS = {POSTS: CLASSIFY_GROUP, COMMANDS: CLASSIFY_GROUP, INCIDENT_EVENTS: NOTIFY_GROUP}


@dataclass(frozen=True, slots=True)
class Keys:
    namespace: str = "redalert"

    def stream(self, name: str) -> str:
        return f"{self.namespace}:{name}"

    # --- ingest --------------------------------------------------------------------------------
    def seen_post(self, post_key: str) -> str:
        """Set while a post (source:id) is remembered, so it is published once."""
        return f"{self.namespace}:seen:{post_key}"

    def alert_group(self, group_key: str) -> str:
        """Set: fingerprints of the Alertmanager alerts still firing in a group (group_by);
        the group's incident resolves when the last one does."""
        return f"{self.namespace}:alertmanager:group:{group_key}"

    # --- people, schedules, escalation (written by ingest's API) --------------------------------
    @property
    def people(self) -> str:
        """Hash: person name -> Person JSON (contacts are apprise URLs: never returned raw)."""
        return f"{self.namespace}:people"

    @property
    def schedules(self) -> str:
        """Hash: schedule name -> Schedule JSON."""
        return f"{self.namespace}:schedules"

    @property
    def escalation_policies(self) -> str:
        """Hash: policy name -> Policy JSON."""
        return f"{self.namespace}:escalation:policies"

    @property
    def escalation_policies_version(self) -> str:
        """Bumped on every policy change, so notify replicas reload them."""
        return f"{self.namespace}:escalation:policies:version"

    def escalation(self, incident_id: str, policy: str) -> str:
        """One policy's run for one incident: EscalationState JSON (the guard of every step)."""
        return f"{self.namespace}:escalation:{incident_id}:{policy}"

    @property
    def escalation_due(self) -> str:
        """Sorted set (shared/due.py): `escalate|policy|incident`, scored by the next step."""
        return f"{self.namespace}:escalation:due"

    def escalation_log(self, incident_id: str) -> str:
        """List of the incident's escalation lines (pages, stops), JSON, for its timeline."""
        return f"{self.namespace}:incident:{incident_id}:escalation"

    # --- sources (polled by ingest) -------------------------------------------------------------
    @property
    def sources(self) -> str:
        """Hash: source name -> its spec JSON (with its secrets; never returned raw)."""
        return f"{self.namespace}:sources"

    @property
    def sources_due(self) -> str:
        """Sorted set: polled sources by when they are next due (epoch seconds)."""
        return f"{self.namespace}:sources:due"

    def source_cursor(self, name: str) -> str:
        """Where the next poll resumes (ETag, Last-Modified, since_id…), JSON."""
        return f"{self.namespace}:source:{name}:cursor"

    def source_status(self, name: str) -> str:
        """Hash: last poll, last success, last error, items ingested…"""
        return f"{self.namespace}:source:{name}:status"

    def source_errors(self, name: str) -> str:
        """List of the source's recent errors (JSON), newest first."""
        return f"{self.namespace}:source:{name}:errors"

    def source_lease(self, name: str) -> str:
        """Held (with a TTL) by the one ingest replica polling the source right now."""
        return f"{self.namespace}:source:{name}:lease"

    # --- incidents (written by the classify replica holding the lease only) --------------------
    def incident(self, incident_id: str) -> str:
        """The incident's JSON snapshot."""
        return f"{self.namespace}:incident:{incident_id}"

    def incident_posts(self, incident_id: str) -> str:
        """List of the incident's posts with their severities (JSON)."""
        return f"{self.namespace}:incident:{incident_id}:posts"

    def incident_timeline(self, incident_id: str) -> str:
        """List of the incident's events (JSON), oldest first."""
        return f"{self.namespace}:incident:{incident_id}:timeline"

    def incident_deliveries(self, incident_id: str) -> str:
        """List of who was told what about the incident (Delivery JSON)."""
        return f"{self.namespace}:incident:{incident_id}:deliveries"

    @property
    def incidents(self) -> str:
        """Sorted set of incident ids by opening time (newest first when read in reverse)."""
        return f"{self.namespace}:incidents"

    @property
    def resolved_incidents(self) -> str:
        """Sorted set of resolved incident ids by resolution time: expired after retention."""
        return f"{self.namespace}:incidents:resolved"

    @property
    def open_incidents(self) -> str:
        """Sorted set of open incident ids by last activity: a new classify owner reads them."""
        return f"{self.namespace}:incidents:open"

    @property
    def classify_owner(self) -> str:
        """The ownership lease: the token of the one classify replica writing incidents now.
        Every write of incident state is fenced by it (services/classify/lease.py)."""
        return f"{self.namespace}:classify:owner"

    def thread(self, source: str, thread_id: str) -> str:
        """Which incident a thread belongs to."""
        return f"{self.namespace}:corr:thread:{source}:{thread_id}"

    def post_incident(self, post_key: str) -> str:
        """Which incident a post joined: replies follow it."""
        return f"{self.namespace}:corr:post:{post_key}"

    def applied(self, post_key: str) -> str:
        """Set once a post has been applied, so a redelivered entry is not applied twice."""
        return f"{self.namespace}:applied:{post_key}"

    def command_applied(self, command_id: str) -> str:
        return f"{self.namespace}:applied-command:{command_id}"

    # --- severity rules (written by ingest's PUT /v1/rules and by classify from its file) -----
    @property
    def rules(self) -> str:
        """The rules in use: RulesDoc JSON (revision, version, source, the YAML text)."""
        return f"{self.namespace}:rules"

    @property
    def rules_revision(self) -> str:
        """Bumped on every change, so classify replicas know to reload; guards every write."""
        return f"{self.namespace}:rules:revision"

    @property
    def rules_history(self) -> str:
        """List of the last rules documents (RulesDoc JSON), newest first."""
        return f"{self.namespace}:rules:history"

    @property
    def rules_file(self) -> str:
        """Digest of the rules file content last published, so each edit is published once."""
        return f"{self.namespace}:rules:file"

    # --- subscriptions and delivery ----------------------------------------------------------
    @property
    def subscriptions(self) -> str:
        """Hash: subscription id -> Subscription JSON (with its secrets; never returned raw)."""
        return f"{self.namespace}:subscriptions"

    @property
    def subscriptions_version(self) -> str:
        """Bumped on every change, so notify replicas know to reload."""
        return f"{self.namespace}:subscriptions:version"

    def firing(self, subscription_id: str, incident_id: str) -> str:
        """What a subscription was last told about an incident (FiringState JSON)."""
        return f"{self.namespace}:firing:{subscription_id}:{incident_id}"

    @property
    def link_secret(self) -> str:
        """The secret signing ack/resolve links, when REDALERT_LINK_SECRET is not set."""
        return f"{self.namespace}:link-secret"

    def webhook_nonce(self, nonce: str) -> str:
        """Set while a signed inbound request is remembered, so a replay of it does nothing."""
        return f"{self.namespace}:webhook-nonce:{nonce}"

    def link_used(self, sig: str) -> str:
        """Set once a signed ack/resolve link was used (until it would have expired)."""
        return f"{self.namespace}:link-used:{sig}"

    def notification(self, event_id: str, subscription_id: str) -> str:
        """The notification owed for one event to one subscription, and whether it was sent."""
        return f"{self.namespace}:notification:{event_id}:{subscription_id}"

    def outbox(self, subscription_id: str, chain: str) -> str:
        """List: event ids owed to one subscription about one incident (its chain), oldest first.
        Only the replica holding the chain's lease (an `owed` due item) sends, head first."""
        return f"{self.namespace}:outbox:{subscription_id}:{chain}"

    def notification_sent(self, event_id: str, subscription_id: str) -> str:
        """Set: URL indices of an owed notification already finished (sent or dead-lettered)."""
        return f"{self.namespace}:notification:{event_id}:{subscription_id}:sent"

    @property
    def subscription_errors(self) -> str:
        """Hash: subscription id -> its last own failure (template, settings), JSON."""
        return f"{self.namespace}:subscriptions:errors"

    def rate(self, subscription_id: str) -> str:
        """A subscription's current rate-limit window: its start and messages counted (JSON)."""
        return f"{self.namespace}:rate:{subscription_id}"

    def digest(self, subscription_id: str, window_start: int) -> str:
        """The overflow of one rate-limit window (Notification JSON), sent as one digest."""
        return f"{self.namespace}:digest:{subscription_id}:{window_start}"

    @property
    def due(self) -> str:
        """Sorted set: notify's timed work (rechecks, repeats, digests) scored by when it is due."""
        return f"{self.namespace}:due"

    @property
    def circuits(self) -> str:
        """Hash: "<subscription id>:<url index>" -> circuit breaker state of that URL (JSON)."""
        return f"{self.namespace}:circuits"

    @property
    def notify_metrics(self) -> str:
        """Hash: delivery counters (sent, failed attempts, dead-lettered, held, digested…)."""
        return f"{self.namespace}:metrics:notify"

    # --- silences -----------------------------------------------------------------------------
    @property
    def silences(self) -> str:
        """Hash: silence id -> Silence JSON."""
        return f"{self.namespace}:silences"

    @property
    def silences_version(self) -> str:
        """Bumped on every change, so notify replicas know to reload."""
        return f"{self.namespace}:silences:version"

    def silence_held(self, silence_id: str) -> str:
        """Set of due-item members held back by a silence, woken early if it is expired."""
        return f"{self.namespace}:silence:{silence_id}:held"

    # --- corrections (operators' labels on posts) --------------------------------------------
    @property
    def corrections(self) -> str:
        """Hash: post key (source:id) -> the operator's correction of its severity (JSON)."""
        return f"{self.namespace}:corrections"

    # --- console ------------------------------------------------------------------------------
    def console_session(self, session_id: str) -> str:
        """A signed-in console session: who, their role, the CSRF token (JSON, with a TTL)."""
        return f"{self.namespace}:console:session:{session_id}"

    # --- people, and what they did (written by ingest) -----------------------------------------
    @property
    def tokens(self) -> str:
        """Hash: token name -> the token's SHA-256 digest."""
        return f"{self.namespace}:tokens"

    @property
    def token_digests(self) -> str:
        """Hash: token digest -> TokenRecord JSON (name, role, when, by whom); never the token."""
        return f"{self.namespace}:tokens:digests"

    @property
    def audit(self) -> str:
        """Stream: every change made through the API (AuditEntry JSON), capped."""
        return f"{self.namespace}:audit"

    # --- dead letters -------------------------------------------------------------------------
    @property
    def deadletter_replayed(self) -> str:
        """Hash: dead letter id -> when and how it was replayed (JSON)."""
        return f"{self.namespace}:deadletter:replayed"

    def deadletter_replaying(self, letter_id: str) -> str:
        """Held while one dead letter is being replayed, so two replays never both send."""
        return f"{self.namespace}:deadletter:replaying:{letter_id}"
