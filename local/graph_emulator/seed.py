"""The demo tenant: ~300 people of Contoso, their managers, the IT pilot and the break-glass accounts.

Everything is derived from the random seed, ids included (uuid5), so the same seed always gives the
same tenant and tests can rely on names, ids and counts. Find objects with the store lookups
(``store.find_user(upn)``, ``store.find_group_by_name(name)``) or the returned ``DemoTenant``.
"""

from __future__ import annotations

import random
import uuid
from dataclasses import dataclass, field
from datetime import date, timedelta

from local.graph_emulator.errors import JsonObject
from local.graph_emulator.resources.per_user_mfa import ENABLED, ENFORCED, set_state
from local.graph_emulator.resources.registration import is_mfa_registered, register_methods
from local.graph_emulator.store import TenantStore

DOMAIN = "contoso.com"
ID_NAMESPACE = uuid.UUID("6f1c2e0a-55a7-4d4b-9c1e-0b5e7a7d2c11")
DEFAULT_RANDOM_SEED = 42

# People per department below the head; with the CEO and 8 heads the tenant holds 300 people.
DEPARTMENT_STAFF = {
    "Engineering": 70,
    "Sales": 56,
    "Operations": 40,
    "IT": 30,
    "Finance": 30,
    "Marketing": 30,
    "HR": 18,
    "Legal": 17,
}
DEPARTMENTS = tuple(DEPARTMENT_STAFF)
EXECUTIVE_DEPARTMENT = "Executive"
COUNTRIES = ("GB", "US", "DE", "FR", "NL", "IN")
COUNTRY_WEIGHTS = (30, 30, 12, 10, 8, 10)
PEOPLE_COUNT = 1 + len(DEPARTMENTS) + sum(DEPARTMENT_STAFF.values())

IT_PILOT_GROUP = "IT pilot"
BREAK_GLASS_GROUP = "WaveGuard - Break glass exclusion"
BREAK_GLASS_UPNS = ("bg-admin1@contoso.onmicrosoft.com", "bg-admin2@contoso.onmicrosoft.com")
# The mailbox WaveGuard sends TAP and nudge e-mails from (the plan's senderMailbox).
SERVICE_MAILBOX_UPN = f"waveguard@{DOMAIN}"
DEMO_USER_COUNT = PEOPLE_COUNT + len(BREAK_GLASS_UPNS) + 1

# Who has registered MFA already: most of IT, a minority elsewhere (registration details report).
REGISTERED_SHARE = {"IT": 0.7}
DEFAULT_REGISTERED_SHARE = 0.3
SSPR_ONLY_SHARE = 0.2
METHOD_SETS = (
    ("microsoftAuthenticatorPush", "softwareOneTimePasscode"),
    ("microsoftAuthenticatorPush",),
    ("mobilePhone", "email"),
    ("fido2", "microsoftAuthenticatorPasswordless"),
    ("softwareOneTimePasscode",),
)
METHODS_UPDATED = "2024-06-01T09:00:00Z"
# Who is on legacy per-user MFA (beta authentication/requirements), per department: how many are
# enforced (picked among people with an MFA method registered) and how many only enabled (picked
# among people without one, who have not completed registration yet). Never the break-glass accounts.
PER_USER_MFA = {"IT": (3, 2), "Finance": (3, 2)}

FIRST_NAMES = (
    "Ada",
    "Alan",
    "Grace",
    "Linus",
    "Margaret",
    "Ken",
    "Barbara",
    "Dennis",
    "Frances",
    "Tim",
    "Radia",
    "Vint",
    "Hedy",
    "Edsger",
    "Katherine",
    "Donald",
    "Sophie",
    "John",
    "Mary",
    "James",
    "Olivia",
    "Noah",
    "Amelia",
    "Liam",
    "Isla",
    "Oliver",
    "Emma",
    "Lucas",
    "Mia",
    "Hugo",
    "Lena",
    "Jonas",
    "Anna",
    "Felix",
    "Chloe",
    "Louis",
    "Camille",
    "Jules",
    "Sanne",
    "Daan",
    "Femke",
    "Bram",
    "Priya",
    "Arjun",
    "Ananya",
    "Rohan",
    "Diya",
    "Vikram",
    "Aisha",
    "Omar",
    "Zara",
    "Ethan",
    "Nora",
    "Leo",
    "Ivy",
    "Max",
    "Ruby",
    "Sam",
    "Eva",
    "Theo",
)
LAST_NAMES = (
    "Lovelace",
    "Turing",
    "Hopper",
    "Torvalds",
    "Hamilton",
    "Thompson",
    "Liskov",
    "Ritchie",
    "Allen",
    "Berners-Lee",
    "Perlman",
    "Cerf",
    "Lamarr",
    "Dijkstra",
    "Johnson",
    "Knuth",
    "Wilson",
    "Smith",
    "Brown",
    "Taylor",
    "Jones",
    "Williams",
    "Davies",
    "Evans",
    "Walker",
    "Wright",
    "Green",
    "Hall",
    "O'Brien",
    "Murphy",
    "Schmidt",
    "Schneider",
    "Fischer",
    "Weber",
    "Wagner",
    "Becker",
    "Martin",
    "Bernard",
    "Dubois",
    "Laurent",
    "Moreau",
    "de Jong",
    "Jansen",
    "de Vries",
    "Bakker",
    "Visser",
    "Sharma",
    "Patel",
    "Gupta",
    "Iyer",
    "Reddy",
    "Khan",
    "Singh",
    "Garcia",
    "Miller",
    "Clark",
    "Lewis",
    "Young",
    "King",
    "Scott",
)
JOB_TITLES = {
    "Engineering": ("Software Engineer", "Senior Software Engineer", "Staff Engineer", "QA Engineer"),
    "Sales": ("Account Executive", "Sales Manager", "Sales Development Representative"),
    "Operations": ("Operations Analyst", "Logistics Coordinator", "Operations Manager"),
    "IT": ("Systems Administrator", "Service Desk Analyst", "Security Engineer", "Identity Engineer"),
    "Finance": ("Accountant", "Financial Analyst", "Payroll Specialist"),
    "Marketing": ("Marketing Specialist", "Content Writer", "Brand Manager"),
    "HR": ("HR Business Partner", "Recruiter", "People Operations Specialist"),
    "Legal": ("Counsel", "Paralegal", "Compliance Officer"),
}


@dataclass(frozen=True)
class DemoTenant:
    """Facts about a seeded demo tenant that tests and demos look up."""

    random_seed: int
    user_count: int
    ceo_id: str
    head_ids: dict[str, str] = field(default_factory=dict)
    department_counts: dict[str, int] = field(default_factory=dict)
    it_pilot_group_id: str = ""
    break_glass_group_id: str = ""
    break_glass_ids: tuple[str, ...] = ()
    service_mailbox_id: str = ""
    # user id -> "enabled" or "enforced": the people on legacy per-user MFA (everyone else: disabled)
    per_user_mfa: dict[str, str] = field(default_factory=dict)


def stable_id(random_seed: int, kind: str, key: str) -> str:
    """The object id of a seeded object: the same seed and key always give the same GUID."""
    return str(uuid.uuid5(ID_NAMESPACE, f"{random_seed}/{kind}/{key}"))


def seed_demo(store: TenantStore, *, random_seed: int = DEFAULT_RANDOM_SEED) -> DemoTenant:
    """Fill an empty store with the demo tenant."""
    builder = _DemoBuilder(store, random_seed)
    ceo = builder.add_person(EXECUTIVE_DEPARTMENT, "Chief Executive Officer", manager_id=None, country="GB")
    heads: dict[str, str] = {}
    counts: dict[str, int] = {EXECUTIVE_DEPARTMENT: 1}
    for department, staff in DEPARTMENT_STAFF.items():
        head = builder.add_person(department, f"Head of {department}", manager_id=ceo["id"])
        heads[department] = head["id"]
        for _ in range(staff):
            builder.add_person(department, builder.rng.choice(JOB_TITLES[department]), manager_id=head["id"])
        counts[department] = staff + 1
    break_glass = [builder.add_break_glass(upn) for upn in BREAK_GLASS_UPNS]
    # added after everyone else and without the shared random generator: no other id changes
    service_mailbox = builder.add_service_mailbox(SERVICE_MAILBOX_UPN)
    it_pilot = builder.add_security_group(IT_PILOT_GROUP, "IT department: first MFA wave")
    store.add_members(it_pilot["id"], [u["id"] for u in store.users.values() if u.get("department") == "IT"])
    exclusion = builder.add_security_group(BREAK_GLASS_GROUP, "Excluded from every WaveGuard CA policy")
    store.add_members(exclusion["id"], [u["id"] for u in break_glass])
    seed_methods(store, random_seed, [u["id"] for u in break_glass])
    per_user_mfa = seed_per_user_mfa(store, random_seed)
    return DemoTenant(
        random_seed=random_seed,
        user_count=len(store.users),
        ceo_id=ceo["id"],
        head_ids=heads,
        department_counts=counts,
        it_pilot_group_id=it_pilot["id"],
        break_glass_group_id=exclusion["id"],
        break_glass_ids=tuple(u["id"] for u in break_glass),
        service_mailbox_id=service_mailbox["id"],
        per_user_mfa=per_user_mfa,
    )


def seed_methods(store: TenantStore, random_seed: int, break_glass_ids: list[str]) -> None:
    """Register MFA methods for a deterministic share of people (own generator: no id changes)."""
    rng = random.Random(f"{random_seed}/methods")
    for user in list(store.users.values()):
        if not user.get("employeeId"):
            continue
        if rng.random() < REGISTERED_SHARE.get(str(user["department"]), DEFAULT_REGISTERED_SHARE):
            methods = list(rng.choice(METHOD_SETS))
        elif rng.random() < SSPR_ONLY_SHARE:
            methods = ["email"]  # registered for password reset only: not MFA
        else:
            continue
        register_methods(store, user["id"], methods, updated=METHODS_UPDATED)
    for user_id in break_glass_ids:
        register_methods(store, user_id, ["fido2"], updated=METHODS_UPDATED, is_admin=True)


def seed_per_user_mfa(store: TenantStore, random_seed: int) -> dict[str, str]:
    """Put a deterministic handful of IT pilot and Finance people on per-user MFA (own generator:
    no id or method changes); answers user id -> state, in directory order."""
    rng = random.Random(f"{random_seed}/per-user-mfa")
    chosen: dict[str, str] = {}
    for department, (enforced, enabled) in PER_USER_MFA.items():
        people = [
            str(u["id"])
            for u in store.users.values()
            if u.get("employeeId") and u.get("department") == department
        ]
        registered = [uid for uid in people if is_mfa_registered(store, uid)]
        unregistered = [uid for uid in people if not is_mfa_registered(store, uid)]
        chosen.update(dict.fromkeys(rng.sample(registered, min(enforced, len(registered))), ENFORCED))
        chosen.update(dict.fromkeys(rng.sample(unregistered, min(enabled, len(unregistered))), ENABLED))
    for user_id, state in chosen.items():
        set_state(store, user_id, state)
    return {uid: chosen[uid] for uid in store.users if uid in chosen}


class _DemoBuilder:
    def __init__(self, store: TenantStore, random_seed: int) -> None:
        self.store = store
        self.random_seed = random_seed
        self.rng = random.Random(random_seed)
        self.next_employee_number = 1000

    def add_person(
        self, department: str, job_title: str, *, manager_id: str | None, country: str = ""
    ) -> JsonObject:
        given, surname, upn = self._unique_name()
        employee_id = f"E{self.next_employee_number}"
        self.next_employee_number += 1
        country = country or self.rng.choices(COUNTRIES, COUNTRY_WEIGHTS)[0]
        hired = self._hire_date()
        user = self.store.add_user(
            {
                "id": stable_id(self.random_seed, "user", employee_id),
                "displayName": f"{given} {surname}",
                "givenName": given,
                "surname": surname,
                "userPrincipalName": upn,
                "mail": upn,
                "mailNickname": upn.split("@")[0],
                "employeeId": employee_id,
                "employeeHireDate": hired,
                "department": department,
                "jobTitle": job_title,
                "companyName": "Contoso",
                "country": country,
                "usageLocation": country,
                "officeLocation": None,
                "businessPhones": [],
                "mobilePhone": None,
                "preferredLanguage": "en-US" if country == "US" else "en-GB",
                "accountEnabled": self.rng.random() >= 0.02,
                "userType": "Member",
                "createdDateTime": hired,
            }
        )
        if manager_id is not None:
            self.store.set_manager(user["id"], manager_id)
        return user

    def add_break_glass(self, upn: str) -> JsonObject:
        name = upn.split("@")[0]
        return self.store.add_user(
            {
                "id": stable_id(self.random_seed, "user", upn),
                "displayName": f"Break glass {name[-1]}",
                "givenName": None,
                "surname": None,
                "userPrincipalName": upn,
                "mail": None,
                "mailNickname": name,
                "employeeId": None,
                "department": None,
                "jobTitle": "Emergency access account",
                "country": None,
                "usageLocation": "GB",
                "businessPhones": [],
                "mobilePhone": None,
                "officeLocation": None,
                "preferredLanguage": None,
                "accountEnabled": True,
                "userType": "Member",
                "createdDateTime": "2020-01-01T00:00:00Z",
            }
        )

    def add_service_mailbox(self, upn: str) -> JsonObject:
        name = upn.split("@")[0]
        return self.store.add_user(
            {
                "id": stable_id(self.random_seed, "user", upn),
                "displayName": "WaveGuard",
                "givenName": None,
                "surname": None,
                "userPrincipalName": upn,
                "mail": upn,
                "mailNickname": name,
                "employeeId": None,
                "department": None,
                "jobTitle": "Service mailbox",
                "companyName": "Contoso",
                "country": None,
                "usageLocation": "GB",
                "businessPhones": [],
                "mobilePhone": None,
                "officeLocation": None,
                "preferredLanguage": "en-GB",
                "accountEnabled": True,
                "userType": "Member",
                "createdDateTime": "2024-01-01T00:00:00Z",
            }
        )

    def add_security_group(self, display_name: str, description: str) -> JsonObject:
        nickname = "".join(ch for ch in display_name.lower() if ch.isalnum())
        return self.store.add_group(
            {
                "id": stable_id(self.random_seed, "group", display_name),
                "displayName": display_name,
                "description": description,
                "mailEnabled": False,
                "mailNickname": nickname,
                "securityEnabled": True,
                "createdDateTime": "2024-01-01T00:00:00Z",
            }
        )

    def _unique_name(self) -> tuple[str, str, str]:
        while True:
            given = self.rng.choice(FIRST_NAMES)
            surname = self.rng.choice(LAST_NAMES)
            local = f"{_slug(given)}.{_slug(surname)}"
            upn = f"{local}@{DOMAIN}"
            if self.store.find_user(upn) is None:
                return given, surname, upn

    def _hire_date(self) -> str:
        day = date(2012, 1, 1) + timedelta(days=self.rng.randrange(0, 14 * 365))
        return f"{day.isoformat()}T09:00:00Z"


def _slug(name: str) -> str:
    return "".join(ch for ch in name.lower() if ch.isalnum())


def seed_extra_users(store: TenantStore, count: int, *, random_seed: int = DEFAULT_RANDOM_SEED) -> None:
    """``count`` more users for a tenant at scale (``--users N``): spread round-robin over the demo
    departments, with stable ids and UPNs ``scale.<n>@contoso.com``, no manager, no methods."""
    for n in range(count):
        department = DEPARTMENTS[n % len(DEPARTMENTS)]
        upn = f"scale.{n:07d}@contoso.com"
        store.add_user(
            {
                "id": stable_id(random_seed, "scale-user", str(n)),
                "displayName": f"Scale User {n}",
                "userPrincipalName": upn,
                "mail": upn,
                "mailNickname": upn.split("@")[0],
                "employeeId": f"S{n:07d}",
                "department": department,
                "companyName": "Contoso",
                "country": "GB",
                "usageLocation": "GB",
                "accountEnabled": True,
                "userType": "Member",
            }
        )
