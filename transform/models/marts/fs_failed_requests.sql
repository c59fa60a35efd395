{#- One row per failed network request captured by FullStory (a `request` event with ReqStatus >= 400): URL,
    method, status and its class (4xx, 5xx), on which page. Incremental on event time. -#}
{{ config(unique_key='event_id') }}

with events as (
    {{ fs_rows_to_model(ref('stg_fs_events'), 'event_at') }}
)

select
    {{ fs_event_context() }},
    req_url,
    req_method,
    req_status,
    case when req_status >= 500 then '5xx' else '4xx' end as req_status_class
from events
where event_type = 'request' and req_status >= 400
