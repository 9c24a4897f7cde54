"""Reading a page of an experiment run's results, filtered by status across the API's pages (the API does
not filter results), with the cursor views/lists.py makes: where to resume within an API page."""

from __future__ import annotations

from ..api.client import RetabClient
from ..views.lists import (
    PAGE_MAX_BYTES,
    PAGE_OVERHEAD_BYTES,
    RESULT_PAGE_SCAN,
    RESULT_SCAN_PAGES,
    ResultList,
    ResultRow,
    parse_result_cursor,
    result_cursor,
    result_row,
    results_hint,
    rows_within,
)


async def list_result_rows(
    client: RetabClient, run_id: str, *, status: str | None, limit: int, cursor: str | None
) -> ResultList:
    """A page of up to `limit` result rows (only those of `status` when given), within PAGE_MAX_BYTES."""
    after, skip = parse_result_cursor(cursor)
    rows: list[ResultRow] = []
    resume_at: list[str] = []  # for each row, the cursor that resumes the listing at that row
    next_cursor: str | None = None
    page_size = RESULT_PAGE_SCAN if status else limit + skip
    for _ in range(RESULT_SCAN_PAGES):
        page = await client.list_results(run_id, limit=min(page_size, 1000), after=after, order="asc")
        matched = [r for r in page.data if status is None or r.status == status]
        used = min(len(matched), skip + limit - len(rows))  # matched rows consumed once this page is taken
        for index in range(skip, used):
            rows.append(result_row(matched[index]))
            resume_at.append(result_cursor(after, index))
        skip = 0
        if len(rows) >= limit:
            if used < len(matched):
                next_cursor = result_cursor(after, used)
            elif page.next_cursor:
                next_cursor = result_cursor(page.next_cursor, 0)
            break
        if not page.next_cursor or not page.data:
            break
        after = page.next_cursor
    else:
        next_cursor = result_cursor(after, 0)  # scanned enough for one call; the rest is one call away
    kept = rows_within(rows, PAGE_MAX_BYTES - PAGE_OVERHEAD_BYTES)
    if kept < len(rows):
        rows, next_cursor = rows[:kept], resume_at[kept]
    return ResultList(
        run_id=run_id,
        status_filter=status,
        results=rows,
        next_cursor=next_cursor,
        hint=results_hint(rows, next_cursor, status),
    )
