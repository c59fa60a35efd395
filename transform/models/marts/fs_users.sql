{#- One row per individual (IndvId: every device cookie FullStory linked to one identity): uid, email, display
    name, first and last seen, sessions, pages, events, active time, the user vars listed in `fullstory_user_vars`
    (latest session's values, from CustomVars), and FullStory's own figures from the `individuals` table when it is
    loaded (fs_* columns; NULL otherwise). Incremental: every individual with a session seen since the cutoff is
    rebuilt from all its sessions. -#}
{{ config(unique_key='indv_id') }}
{%- set user_vars = var('fullstory_user_vars') %}

with sessions as (
    {%- set cutoff = fs_cutoff('last_seen_at') %}
    select * from {{ ref('fs_sessions') }}
    {%- if cutoff is not none %}
    where indv_id in (select indv_id from {{ ref('fs_sessions') }} where last_event_at >= {{ fs_ts(cutoff) }})
    {%- endif %}
),

ordered as (
    select
        sessions.*,
        row_number() over (partition by indv_id order by last_event_at desc, session_key desc) as n_from_last
    from sessions
),

users as (
    select
        indv_id,
        max(case when n_from_last = 1 then user_app_key end) as uid,
        max(case when n_from_last = 1 then user_email end) as email,
        max(case when n_from_last = 1 then user_display_name end) as display_name,
        {%- for name in user_vars %}
        max(case when n_from_last = 1 then {{ name | lower }} end) as {{ name | lower }},
        {%- endfor %}
        min(started_at) as first_seen_at,
        max(last_event_at) as last_seen_at,
        count(*) as sessions,
        count(distinct user_id) as devices,
        {{ fs_sum('pages') }} as pages,
        {{ fs_sum('events') }} as events,
        {{ fs_sum('active_ms') }} as active_ms,
        {{ fs_sum('duration_ms') }} as duration_ms,
        {{ fs_sum('rage_clicks') }} as rage_clicks,
        {{ fs_sum('dead_clicks') }} as dead_clicks,
        {{ fs_sum('error_clicks') }} as error_clicks
    from ordered
    group by indv_id
)

select
    users.*,
    case when users.uid is not null and users.uid <> '' then 1 else 0 end as is_identified,
    individuals.fs_created_at,
    individuals.fs_num_sessions,
    individuals.fs_num_events,
    individuals.fs_total_sec,
    individuals.fs_active_sec,
    individuals.fs_last_event_at
from users
left join {{ ref('stg_fs_individuals') }} as individuals on individuals.indv_id = users.indv_id
